//! Stage one of configuration: an MM2 properties file read into keys with their line numbers,
//! so that every later error can point at the line that caused it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{providers, ConfigError};

/// One `key = value` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    /// `None` for keys that were not written in a properties file (a translated resource).
    pub line: Option<usize>,
    /// The value as written, when it held a `${provider:...}` reference (then `value` is the
    /// resolved secret and must never be shown).
    pub reference: Option<String>,
}

/// The raw key/value pairs of a properties file; a key set twice keeps its last value, as Java's
/// `Properties.load` does.
#[derive(Debug, Clone, Default)]
pub struct RawProperties {
    pub file: PathBuf,
    entries: BTreeMap<String, Entry>,
}

/// A configuration file larger than this is a mistake (or a device that never ends).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Java's `Properties.load(InputStream)` reads ISO-8859-1: each byte is the character of that
/// code point (java-properties' default, windows-1252, differs for 0x80-0x9F).
pub(crate) fn java_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The lines of properties text already decoded by [`java_text`]. Handed to java-properties as
/// UTF-8, which holds no byte-order mark: its decoder sniffs them (Java does not) and panics
/// on a file that starts with a UTF-16 one and ends mid-character (found by fuzzing).
pub(crate) fn java_lines(text: &str) -> java_properties::PropertiesIter<&[u8]> {
    java_properties::PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8)
}

impl RawProperties {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        // A device or a directory would never end, or fail oddly.
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: "not a regular file".into(),
            });
        }
        let file = std::fs::File::open(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(path, std::io::BufReader::new(file))
    }

    /// Parses properties text (ISO-8859-1 like Java's `Properties.load`, which MM2 uses).
    pub fn parse(path: &Path, mut input: impl std::io::Read) -> Result<Self, ConfigError> {
        let refused = |message: String| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message,
        };
        let mut bytes = Vec::new();
        (&mut input)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refused(format!("cannot read the file: {e}")))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(refused(format!(
                "larger than {} MiB: not a configuration file",
                MAX_FILE_BYTES >> 20
            )));
        }
        let text = java_text(&bytes);
        let mut props = RawProperties {
            file: path.to_path_buf(),
            entries: BTreeMap::new(),
        };
        for line in java_lines(&text) {
            let line = line.map_err(|e| ConfigError {
                file: path.to_path_buf(),
                line: e.line_number(),
                key: String::new(),
                message: format!("not a properties file: {e}"),
            })?;
            let number = line.line_number();
            if let java_properties::LineContent::KVPair(key, value) = line.consume_content() {
                props.insert(key, value.trim().to_string(), Some(number))?;
            }
        }
        Ok(props)
    }

    /// Properties that were not read from a properties file but made from another format (a
    /// `KafkaMirrorMaker2` resource); `path` is that file, for messages.
    pub fn from_pairs(
        path: &Path,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut props = RawProperties {
            file: path.to_path_buf(),
            entries: BTreeMap::new(),
        };
        for (key, value) in pairs {
            props.insert(key, value, None)?;
        }
        Ok(props)
    }

    /// Sets `key`, resolving config-provider references in `value`.
    fn insert(
        &mut self,
        key: String,
        value: String,
        line: Option<usize>,
    ) -> Result<(), ConfigError> {
        let reference = providers::has_reference(&value).then(|| value.clone());
        let value =
            match &reference {
                None => value,
                Some(raw) => providers::resolve(raw, &|name| std::env::var(name).ok()).map_err(
                    |message| ConfigError {
                        file: self.file.clone(),
                        line,
                        key: key.clone(),
                        message,
                    },
                )?,
            };
        self.entries.insert(
            key,
            Entry {
                value,
                line,
                reference,
            },
        );
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// Entries whose key starts with `prefix`, with the prefix removed.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Entry)> {
        self.entries
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(move |(k, e)| (&k[prefix.len()..], e))
    }

    /// An error about `key`, pointing at its line when the file has it.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.get(key).and_then(|e| e.line),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RawProperties {
        RawProperties::parse(Path::new("mm2.properties"), text.as_bytes()).unwrap()
    }

    #[test]
    fn keeps_line_numbers_and_last_value() {
        let props = parse("# comment\nclusters = a, b\n\na.bootstrap.servers: h:1\nclusters=c\n");
        assert_eq!(props.get("clusters").unwrap().value, "c");
        assert_eq!(props.get("clusters").unwrap().line, Some(5));
        assert_eq!(props.get("a.bootstrap.servers").unwrap().line, Some(4));
    }

    #[test]
    fn understands_continuations_and_escapes() {
        let props = parse("topics = LH.*, \\\n   other\nname = caf\\u00e9\n");
        assert_eq!(props.get("topics").unwrap().value, "LH.*, other");
        assert_eq!(props.get("name").unwrap().value, "café");
    }

    #[test]
    fn bytes_are_read_as_java_reads_them_and_no_input_panics() {
        // Java's ISO-8859-1: 0x80 is U+0080 (windows-1252 would make it the euro sign); a
        // byte-order mark is two characters, not an encoding switch.
        let path = Path::new("mm2.properties");
        let props = RawProperties::parse(path, &b"a = \x80\xe9\n"[..]).unwrap();
        assert_eq!(props.get("a").unwrap().value, "\u{80}\u{e9}");
        let props = RawProperties::parse(path, &b"\xfe\xffa = 1\n"[..]).unwrap();
        assert_eq!(props.get("\u{fe}\u{ff}a").unwrap().value, "1");
        // Found by fuzzing: java-properties' own decoder panicked on this (UTF-16 mark, odd
        // length).
        let crash = b"\xfe\xff\xff\xff\xff\xff\xff\xffusca.b\xe2";
        assert!(RawProperties::parse(path, &crash[..]).is_ok());
    }

    #[test]
    fn a_device_is_refused_not_read_forever() {
        let err = RawProperties::read(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn prefix_iteration_strips_the_prefix() {
        let props = parse("a.x = 1\na.y = 2\nab.z = 3\nb.x = 4\n");
        let keys: Vec<_> = props.with_prefix("a.").map(|(k, _)| k).collect();
        assert_eq!(keys, ["x", "y"]);
    }
}
