//! `noop`: a test plugin for the runtime library and cnitool. It touches
//! nothing; it records how it was called and answers as its config says:
//!
//! - `record`: a file to which every call appends one JSON line
//!   `{"command", "label", "env": {CNI_*}, "stdin": <config>}`;
//! - `label`: a name for this instance, so a list of several noops can
//!   be told apart;
//! - `result`: the ADD result (else the prevResult with an interface named
//!   after `label` appended, else an empty result);
//! - `failOn` (a verb), with `errorCode` and `errorMsg`: fail that verb
//!   with that CNI error;
//! - `rawStdout` (a verb) and `raw`: print `raw` instead of JSON;
//! - `sleepOn` (a verb) and `sleepSeconds`: hang first.

use serde_json::{json, Map, Value};
use std::io::{Read, Write};

fn main() {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    if command == "VERSION" {
        println!(
            r#"{{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}}"#
        );
        return;
    }
    let conf: Value = serde_json::from_slice(&stdin).unwrap_or(Value::Null);
    let get = |k: &str| conf.get(k).cloned().unwrap_or(Value::Null);
    let is_verb = |k: &str| get(k).as_str() == Some(command.as_str());
    let label = get("label").as_str().unwrap_or("noop").to_string();

    if let Some(path) = get("record").as_str() {
        let env: Map<String, Value> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CNI_"))
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let line = json!({"command": command, "label": label, "env": env, "stdin": conf});
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    if is_verb("sleepOn") {
        let secs = get("sleepSeconds").as_f64().unwrap_or(60.0);
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
    if is_verb("rawStdout") {
        print!("{}", get("raw").as_str().unwrap_or(""));
        std::process::exit(get("exitCode").as_i64().unwrap_or(1) as i32);
    }
    if is_verb("failOn") {
        let err = json!({"cniVersion": get("cniVersion"), "code": get("errorCode").as_u64().unwrap_or(100),
                         "msg": get("errorMsg").as_str().unwrap_or("noop failed as asked")});
        println!("{err}");
        std::process::exit(1);
    }
    if command == "ADD" {
        let result = match (get("result"), get("prevResult")) {
            (Value::Object(r), _) => Value::Object(r),
            (_, Value::Object(mut prev)) => {
                let mut ifaces = prev
                    .get("interfaces")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                ifaces.push(json!({"name": label}));
                prev.insert("interfaces".into(), Value::Array(ifaces));
                Value::Object(prev)
            }
            _ => json!({"cniVersion": get("cniVersion"), "interfaces": [{"name": label}]}),
        };
        println!("{result}");
    }
}
