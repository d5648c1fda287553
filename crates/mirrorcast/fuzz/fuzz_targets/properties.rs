//! A properties file as an operator could write it, with config-provider references
//! (`${env:..}`, `${file:..}`, `${directory:..}`): read, resolved into flows and described
//! must end in a config or in errors, never in a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorcast::config::{describe, Config, RawProperties};

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.properties");
    let Ok(raw) = RawProperties::parse(path, data) else {
        return;
    };
    match Config::resolve(&raw) {
        Ok(config) => {
            let _ = describe(&config);
        }
        Err(errors) => {
            for error in &errors.0 {
                let _ = error.to_string();
            }
        }
    }
});
