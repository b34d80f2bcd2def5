//! The one rule by which rcni reads every JSON document: Go's
//! `encoding/json`, because the reference plugins and the runtimes that
//! call them are written in Go. A key names a struct field when it equals
//! the field's name exactly or, failing that, up to case (containerd sends
//! `HostPort` where the convention says `hostPort`); when several keys
//! name the same field, the last one wins; unknown keys are ignored.
//!
//! [`from_value`] applies the rule at every depth (a `serde::Deserializer`
//! over a borrowed [`Value`]), and its errors name the path of the bad
//! value (`portMappings[0].hostPort: invalid type: ...`). [`get`] is the
//! same rule for code that looks one key up by hand.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Decodes `T` from `value` by Go's rules (see the module doc).
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, DecodeError> {
    T::deserialize(Go(value))
}

/// As [`from_value`], from an object.
pub fn from_map<T: DeserializeOwned>(map: &Map<String, Value>) -> Result<T, DecodeError> {
    T::deserialize(GoMap(map, &[]))
}

/// As [`from_map`], as if the object had none of the top-level keys in
/// `left_out` (spelled as written), without copying the rest of it.
pub fn from_map_without<T: DeserializeOwned>(
    map: &Map<String, Value>,
    left_out: &[String],
) -> Result<T, DecodeError> {
    T::deserialize(GoMap(map, left_out))
}

/// The top-level `field` of a JSON object document by Go's rule, read
/// without building the rest (the other values are skipped as they are
/// parsed), so a probe of a huge document costs no more than reading it.
/// `None` when absent or `null`.
pub fn field_from_slice<T: DeserializeOwned>(
    bytes: &[u8],
    field: &str,
) -> Result<Option<T>, serde_json::Error> {
    struct Probe<'f, T>(&'f str, std::marker::PhantomData<T>);
    impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Probe<'_, T> {
        type Value = Option<T>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, T: DeserializeOwned> Visitor<'de> for Probe<'_, T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if fold_eq(&key, self.0) {
                    // As Go: every spelling is assigned in turn, and a
                    // null leaves what an earlier one set.
                    if let Some(v) = map.next_value::<Option<T>>()? {
                        found = Some(v);
                    }
                } else {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let found = Probe(field, std::marker::PhantomData).deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// The value a Go struct field named `field` would receive from `map`:
/// the last key equal to `field` up to case.
pub fn get<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    map.iter()
        .rev()
        .find(|(key, _)| fold_eq(key, field))
        .map(|(_, value)| value)
}

/// Sets `field` so that Go reads `value` for it: every other spelling of
/// the key is removed first (libcni injects `name`, `prevResult`, ... into
/// a Go map, whose sorted encoding puts the exact spelling last).
pub fn set(map: &mut Map<String, Value>, field: &str, value: Value) {
    map.retain(|key, _| !fold_eq(key, field));
    map.insert(field.to_string(), value);
}

/// As [`get`], through an object value; `None` when `value` is no object.
pub fn get_in<'a>(value: &'a Value, field: &str) -> Option<&'a Value> {
    value.as_object().and_then(|m| get(m, field))
}

/// The field names a `Deserialize` struct reads (what its derive
/// declares), found by asking it to deserialize from a probe.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = DecodeError;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
            Err(de::Error::custom("field probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, DecodeError> {
            *self.0 = fields;
            Err(de::Error::custom("field probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Equal up to case, as Go's `strings.EqualFold` (simple Unicode folding).
pub fn fold_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let fold = |s: &str| -> String {
        s.chars()
            .flat_map(char::to_uppercase)
            .collect::<String>()
            .to_lowercase()
    };
    fold(a) == fold(b)
}

/// A value that did not decode, with where it sits in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Innermost segment last once complete (segments are pushed while
    /// the error travels outwards, then reversed by [`DecodeError::path`]).
    segments_outwards: Vec<Segment>,
    msg: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl DecodeError {
    fn at(mut self, segment: Segment) -> Self {
        self.segments_outwards.push(segment);
        self
    }

    /// The same error, for a value found under `prefix` (a key or a
    /// dotted path such as `runtimeConfig.portMappings`).
    pub fn within(self, prefix: &str) -> Self {
        self.at(Segment::Key(prefix.to_string()))
    }

    /// Where the bad value is, e.g. `portMappings[0].hostPort`; empty for
    /// the document itself.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.segments_outwards.iter().rev() {
            match segment {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// The top-level key the bad value sits under, if any.
    pub fn top_key(&self) -> Option<&str> {
        match self.segments_outwards.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// What is wrong, without the path.
    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if path.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{path}: {}", self.msg)
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            segments_outwards: Vec::new(),
            msg: msg.to_string(),
        }
    }
}

/// The deserializer: a borrowed value, decoded with Go's key rule.
#[derive(Clone, Copy)]
struct Go<'a>(&'a Value);

/// An object seen as a whole document.
#[derive(Clone, Copy)]
/// An object, less the top-level keys of the second field.
struct GoMap<'a>(&'a Map<String, Value>, &'a [String]);

impl<'de> de::Deserializer<'de> for GoMap<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(Fields::new(self.0, &[], self.1))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_map(Fields::new(self.0, fields, self.1))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// `deserialize_*` methods that give the visitor the type's zero value for
/// `null` and decode anything else as [`Deserializer::deserialize_any`].
///
/// [`Deserializer::deserialize_any`]: de::Deserializer::deserialize_any
macro_rules! zero_on_null {
    ($($method:ident => $visit:ident($zero:expr),)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
                match self.0 {
                    Value::Null => visitor.$visit($zero),
                    _ => self.deserialize_any(visitor),
                }
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Go<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items::new(items)),
            Value::Object(map) => visitor.visit_map(Fields::new(map, &[], &[])),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map, fields, &[])),
            Value::Null => visitor.visit_map(Fields::empty()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                let (variant, content) = map.iter().next().unwrap_or_else(|| unreachable!());
                visitor.visit_enum(Tagged { variant, content })
            }
            other => Err(de::Error::invalid_type(
                unexpected(other),
                &"a string or a one-key object",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    // Go decodes `null` into a value that is not a pointer by leaving its
    // zero value (runtimes send `null` for every empty Go slice): so does
    // rcni, whatever the target type.
    zero_on_null! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_str => visit_borrowed_str(""),
        deserialize_string => visit_borrowed_str(""),
        deserialize_seq => visit_seq(Items::new(&[])),
        deserialize_map => visit_map(Fields::empty()),
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => de::Unexpected::Unsigned(u),
            (_, Some(i)) => de::Unexpected::Signed(i),
            _ => de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// An object's entries, each key renamed to the struct field it names.
struct Fields<'a> {
    /// (field or key, key as written, value); one entry per field.
    entries: std::vec::IntoIter<(&'a str, &'a str, &'a Value)>,
    pending: Option<(&'a str, &'a Value)>,
}

impl<'a> Fields<'a> {
    fn new(
        map: &'a Map<String, Value>,
        fields: &'static [&'static str],
        left_out: &[String],
    ) -> Self {
        let mut entries: Vec<(&'a str, &'a str, &'a Value)> = Vec::with_capacity(map.len());
        // Where each field's entry is: only keys that name a field can
        // collide (the object's own keys are distinct), so this stays
        // as small as the struct however large the object is.
        let mut slots: Vec<(&'static str, usize)> = Vec::new();
        for (key, value) in map {
            if left_out.contains(key) {
                continue;
            }
            if value.is_null() && !fields.is_empty() {
                // A struct field keeps its value when Go reads `null`
                // into it, even one an earlier key set.
                continue;
            }
            let named = fields
                .iter()
                .find(|f| **f == key)
                .or_else(|| fields.iter().find(|f| fold_eq(f, key)))
                .copied();
            let Some(field) = named else {
                entries.push((key, key, value));
                continue;
            };
            match slots.iter().find(|(f, _)| *f == field) {
                // Go assigns every matching key in turn: the last one stays.
                Some(&(_, at)) => entries[at] = (field, key, value),
                None => {
                    slots.push((field, entries.len()));
                    entries.push((field, key, value));
                }
            }
        }
        Fields {
            entries: entries.into_iter(),
            pending: None,
        }
    }
}

impl Fields<'_> {
    fn empty() -> Self {
        Fields {
            entries: Vec::new().into_iter(),
            pending: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for Fields<'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((field, written, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((written, value));
        seed.deserialize(de::value::BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let (written, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("value asked for before its key"))?;
        seed.deserialize(Go(value))
            .map_err(|e| e.at(Segment::Key(written.to_string())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An array's items, each decoded by the same rule.
struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
}

impl<'a> Items<'a> {
    fn new(items: &'a [Value]) -> Self {
        Items {
            items: items.iter().enumerate(),
        }
    }
}

impl<'de> de::SeqAccess<'de> for Items<'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, value)) => seed
                .deserialize(Go(value))
                .map(Some)
                .map_err(|e| e.at(Segment::Index(i))),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// An externally tagged enum: `{"variant": content}`.
struct Tagged<'a> {
    variant: &'a str,
    content: &'a Value,
}

impl<'de> de::EnumAccess<'de> for Tagged<'de> {
    type Error = DecodeError;
    type Variant = Go<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Go<'de>), DecodeError> {
        let variant = seed.deserialize(de::value::BorrowedStrDeserializer::new(self.variant))?;
        Ok((variant, Go(self.content)))
    }
}

impl<'de> de::VariantAccess<'de> for Go<'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        match self.0 {
            Value::Null => Ok(()),
            other => Err(de::Error::invalid_type(unexpected(other), &"null")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Mapping {
        #[serde(rename = "hostPort")]
        host_port: u16,
        #[serde(rename = "containerPort")]
        container_port: u16,
        protocol: String,
        #[serde(rename = "hostIP")]
        host_ip: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Runtime {
        #[serde(rename = "portMappings")]
        port_mappings: Vec<Mapping>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Bridge,
        Private,
    }

    #[test]
    fn nested_keys_match_in_any_case() {
        let containerd = json!({"PortMappings": [
            {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}
        ], "MODE": "private"});
        let got: Runtime = from_value(&containerd).unwrap();
        assert_eq!(
            got.port_mappings,
            [Mapping {
                host_port: 18080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: Some(String::new()),
            }]
        );
        assert_eq!(got.mode, Some(Mode::Private));
    }

    #[test]
    fn exact_field_wins_and_last_key_wins() {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Two {
            a: u8,
            #[serde(rename = "A")]
            upper: u8,
            b: u8,
        }
        let got: Two = from_value(&json!({"A": 1, "a": 2, "B": 3, "b": 4, "b ": 5})).unwrap();
        assert_eq!((got.a, got.upper, got.b), (2, 1, 4));
        let later: Two = from_value(&json!({"b": 4, "B": 3})).unwrap();
        assert_eq!(later.b, 3);
        assert_eq!(
            get(json!({"b": 4, "B": 3}).as_object().unwrap(), "b"),
            Some(&json!(3))
        );
    }

    #[test]
    fn errors_name_the_path() {
        let bad = json!({"portMappings": [{"hostPort": 80}, {"HostPort": "x"}]});
        let err = from_value::<Runtime>(&bad).unwrap_err();
        assert_eq!(err.path(), "portMappings[1].HostPort");
        assert_eq!(err.top_key(), Some("portMappings"));
        assert!(err
            .to_string()
            .starts_with("portMappings[1].HostPort: invalid type: string"));
        let err = from_value::<Runtime>(&json!({"mode": "vepa"})).unwrap_err();
        assert_eq!(err.path(), "mode");
    }

    #[test]
    fn null_leaves_the_zero_value_as_go() {
        #[derive(Deserialize, Debug, PartialEq, Default)]
        #[serde(default)]
        struct Conf {
            mtu: u32,
            name: String,
            flag: bool,
            list: Vec<String>,
            inner: Mapping,
            opt: Option<u8>,
        }
        let got: Conf = from_value(&json!({"mtu": null, "name": null, "flag": null,
            "list": [null, "a"], "inner": null, "opt": null}))
        .unwrap();
        assert_eq!(
            got,
            Conf {
                list: vec![String::new(), "a".into()],
                ..Conf::default()
            }
        );
        // A later null does not undo an earlier spelling's value.
        let kept: Conf = from_value(&json!({"mtu": 1400, "MTU": null})).unwrap();
        assert_eq!(kept.mtu, 1400);
        let runtime: Runtime = from_value(&json!({"portMappings": null})).unwrap();
        assert!(runtime.port_mappings.is_empty());
    }

    #[test]
    fn one_field_is_read_without_the_rest() {
        let doc = br#"{"NAME": "a", "x": [1, {"name": "inner"}], "Name": "b", "name": null}"#;
        assert_eq!(
            field_from_slice::<String>(doc, "name").unwrap(),
            Some("b".into())
        );
        assert_eq!(
            field_from_slice::<String>(br#"{"x": 1}"#, "name").unwrap(),
            None
        );
        assert!(field_from_slice::<String>(br#"{"name": 5}"#, "name").is_err());
        assert!(field_from_slice::<String>(br#"[1]"#, "name").is_err());
        assert!(field_from_slice::<String>(br#"{"name": "a"} x"#, "name").is_err());
    }

    #[test]
    fn unicode_folding_as_go() {
        // Go folds the Kelvin sign to k and the long s to s.
        assert!(fold_eq("\u{212a}ey", "key"));
        assert!(fold_eq("\u{17f}ize", "SIZE"));
        assert!(!fold_eq("keys", "key"));
    }

    #[test]
    fn values_decode_as_serde_json_would() {
        let v = json!({"portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "udp", "hostIP": null}]});
        let ours: Runtime = from_value(&v).unwrap();
        assert_eq!(ours.port_mappings[0].host_ip, None);
        assert!(from_value::<Runtime>(&json!({"portMappings": [{"hostPort": 70000}]})).is_err());
        assert!(from_value::<Runtime>(&json!({"portMappings": [{"hostPort": -1}]})).is_err());
        assert!(from_value::<Runtime>(&json!({"portMappings": [{"hostPort": 1.5}]})).is_err());
        assert!(from_value::<Runtime>(&json!({"portMappings": {}})).is_err());
    }

    fn recase(key: &str, mask: u64) -> String {
        key.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    fn recase_all(v: &Value, mask: u64) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (recase(k, mask), recase_all(v, mask.rotate_left(7))))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| recase_all(v, mask)).collect())
            }
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn any_key_case_decodes_the_same(mask in any::<u64>(), port in 1u16.., proto in "tcp|udp|sctp") {
            let canonical = json!({"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": proto, "hostIP": "10.0.0.1"}]});
            let want: Runtime = from_value(&canonical).unwrap();
            let got: Runtime = from_value(&recase_all(&canonical, mask)).unwrap();
            prop_assert_eq!(got, want);
        }
    }
}
