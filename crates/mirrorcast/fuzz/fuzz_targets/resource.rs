//! A `KafkaMirrorMaker2` resource (Strimzi's YAML) with secrets references: translated into
//! properties and resolved must end in a config or in an error, never in a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorcast::config::{describe, resource, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.yaml");
    let secrets = std::path::Path::new("/nonexistent/mirrorcast-fuzz-secrets");
    for strip_security in [false, true] {
        let Ok(translated) = resource::translate(path, text, secrets, strip_security) else {
            continue;
        };
        if let Ok(config) = Config::resolve(&translated.raw) {
            let _ = describe(&config);
        }
    }
});
