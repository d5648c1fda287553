//! Name filters: MM2's comma-separated Java regex lists (`topics`, `topics.exclude`,
//! `groups`, `groups.exclude`), each of which must match the WHOLE name.
//!
//! Invariant: a pattern that cannot be evaluated on a name (fancy-regex's backtrack limit)
//! never lets that name through: an include counts as no match, an exclude as a match. The
//! first such failure of each pattern is logged once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fancy_regex::Regex;

/// One pattern of a list, with whether its evaluation failure was already reported.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    regex: Regex,
    failure_reported: Arc<AtomicBool>,
}

/// A comma-separated list of patterns, any of which may match.
#[derive(Debug, Clone)]
pub struct PatternList {
    source: String,
    patterns: Vec<Pattern>,
}

/// Whether a list matched a name, or could not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Yes,
    No,
    /// A pattern could not be evaluated on the name and none matched it.
    Unknown,
}

impl PatternList {
    /// Compiles `list`; the error names the pattern that does not compile.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for text in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let anchored = format!("^(?:{text})$");
            let regex = Regex::new(&anchored)
                .map_err(|e| format!("`{text}` is not a valid regular expression: {e}"))?;
            patterns.push(Pattern {
                text: text.to_string(),
                regex,
                failure_reported: Arc::new(AtomicBool::new(false)),
            });
        }
        Ok(PatternList {
            source: list.to_string(),
            patterns,
        })
    }

    /// Whether any pattern matches the whole of `name`.
    pub fn evaluate(&self, name: &str) -> Match {
        let mut result = Match::No;
        for pattern in &self.patterns {
            match pattern.regex.is_match(name) {
                Ok(true) => return Match::Yes,
                Ok(false) => {}
                Err(error) => {
                    if !pattern.failure_reported.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "the pattern `{}` cannot be evaluated on `{name}` ({error}); names \
                             it cannot decide are left out (never replicated), here and from \
                             now on: simplify the pattern",
                            pattern.text
                        );
                    }
                    result = Match::Unknown;
                }
            }
        }
        result
    }

    /// Whether a pattern surely matches the whole of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.evaluate(name) == Match::Yes
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// `topics` minus `topics.exclude` (or the groups' pair).
#[derive(Debug, Clone)]
pub struct TopicFilter {
    pub include: PatternList,
    pub exclude: PatternList,
}

impl TopicFilter {
    /// Included for sure and excluded by no pattern for sure: a name a pattern cannot decide
    /// is left out.
    pub fn accepts(&self, name: &str) -> bool {
        self.include.evaluate(name) == Match::Yes && self.exclude.evaluate(name) == Match::No
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

    /// A backreference makes fancy-regex backtrack; the alternation makes it exponential.
    const UNDECIDABLE: &str = r"(a|aa)*\1b";

    fn hard_name() -> String {
        "a".repeat(40) + "c"
    }

    #[test]
    fn a_pattern_that_cannot_decide_never_lets_a_name_through() {
        let name = hard_name();
        let undecidable = PatternList::parse(UNDECIDABLE).unwrap();
        assert_eq!(undecidable.evaluate(&name), Match::Unknown);
        let as_include = TopicFilter {
            include: undecidable.clone(),
            exclude: PatternList::parse("").unwrap(),
        };
        assert!(
            !as_include.accepts(&name),
            "an include that cannot decide includes nothing"
        );
        let as_exclude = TopicFilter {
            include: PatternList::parse(".*").unwrap(),
            exclude: undecidable,
        };
        assert!(
            !as_exclude.accepts(&name),
            "an exclude that cannot decide excludes"
        );
        assert!(
            as_exclude.accepts("orders"),
            "names it decides are judged as usual"
        );
        // A pattern that decides wins over one that cannot.
        let either = PatternList::parse(&format!("{UNDECIDABLE}, a+c")).unwrap();
        assert_eq!(either.evaluate(&name), Match::Yes);
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
