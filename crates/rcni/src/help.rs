//! `rcni help PLUGIN`: the plugin's keys with their types, defaults and
//! meanings, the capabilities it reads, and an example config, all from
//! the schema the plugin's own decoding is tested against.

pub fn run(name: &str) -> u8 {
    let Some(plugin) = rcni_plugins::lookup(name) else {
        eprintln!("rcni help: unknown plugin {name:?}; `rcni list` shows the plugins");
        return 2;
    };
    let Some(schema) = plugin.schema() else {
        println!("{name}: no key reference yet");
        return 0;
    };
    println!("{name}: {}", schema.about);
    println!(
        "spec versions: {}\n",
        plugin.supported_versions().join(", ")
    );
    if schema.keys.is_empty() {
        println!("keys: none of its own");
    } else {
        let width = schema.keys.iter().map(|k| k.name.len()).max().unwrap_or(0);
        let ty_width = schema.keys.iter().map(|k| k.ty.len()).max().unwrap_or(0);
        println!("keys:");
        for k in schema.keys {
            let default = if k.default.is_empty() {
                String::new()
            } else {
                format!(" (default: {})", k.default)
            };
            println!(
                "  {:width$}  {:ty_width$}  {}{default}",
                k.name, k.ty, k.meaning
            );
        }
    }
    if !schema.capabilities.is_empty() {
        println!(
            "\ncapabilities (runtimeConfig): {}",
            schema.capabilities.join(", ")
        );
    }
    println!("\nexample:\n{}", schema.example);
    0
}
