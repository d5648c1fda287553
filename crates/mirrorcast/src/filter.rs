//! Name filters: MM2's comma-separated Java regex lists (`topics`, `topics.exclude`, later
//! `groups`), each of which must match the WHOLE name.

use fancy_regex::Regex;

/// A comma-separated list of patterns, any of which may match.
#[derive(Debug, Clone)]
pub struct PatternList {
    source: String,
    patterns: Vec<Regex>,
}

impl PatternList {
    /// Compiles `list`; the error names the pattern that does not compile.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let anchored = format!("^(?:{pattern})$");
            let regex = Regex::new(&anchored)
                .map_err(|e| format!("`{pattern}` is not a valid regular expression: {e}"))?;
            patterns.push(regex);
        }
        Ok(PatternList {
            source: list.to_string(),
            patterns,
        })
    }

    /// Whether any pattern matches the whole of `name`. A pattern too complex to evaluate
    /// (fancy-regex's backtrack limit) counts as no match.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.is_match(name).unwrap_or(false))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// `topics` minus `topics.exclude`.
#[derive(Debug, Clone)]
pub struct TopicFilter {
    pub include: PatternList,
    pub exclude: PatternList,
}

impl TopicFilter {
    pub fn accepts(&self, topic: &str) -> bool {
        self.include.matches(topic) && !self.exclude.matches(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names_only() {
        let list = PatternList::parse("LH.*, orders").unwrap();
        assert!(list.matches("LH.ORDERS"));
        assert!(list.matches("orders"));
        assert!(!list.matches("xLH.ORDERS"));
        assert!(!list.matches("orders2"));
        assert!(!list.matches("my-orders"));
    }

    #[test]
    fn mm2_default_exclusions() {
        let filter = TopicFilter {
            include: PatternList::parse(".*").unwrap(),
            exclude: PatternList::parse(r".*[\-\.]internal, .*\.replica, __.*").unwrap(),
        };
        assert!(filter.accepts("orders"));
        assert!(!filter.accepts("mm2-offsets.europe.internal"));
        assert!(!filter.accepts("a-internal"));
        assert!(!filter.accepts("orders.replica"));
        assert!(!filter.accepts("__consumer_offsets"));
    }

    #[test]
    fn java_look_arounds_are_understood() {
        let list = PatternList::parse("(?!test\\.).*").unwrap();
        assert!(list.matches("orders"));
        assert!(!list.matches("test.orders"));
    }

    #[test]
    fn an_invalid_pattern_is_named() {
        let err = PatternList::parse("ok, LH.(*").unwrap_err();
        assert!(err.contains("LH.(*"), "{err}");
    }

    #[test]
    fn an_empty_list_matches_nothing() {
        assert!(!PatternList::parse("").unwrap().matches("x"));
    }
}
