//! Suppression files in the style of `LeakSanitizer`'s: one `leak:PATTERN` a
//! line, `#` starting a comment line. A pattern matches a leak site when it
//! is found inside the function name, the source file, the module's path or
//! the module's file name of any of its frames; `*` stands for any run of
//! characters.

use std::{fmt, fs, path::Path};

use anyhow::Context as _;

use crate::symbolize::Frame;

/// The rules of a suppressions file.
#[derive(Clone, Debug, Default)]
pub struct Suppressions {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    /// As written after `leak:`.
    pattern: String,
    /// The pattern's pieces between `*`s, found in this order.
    pieces: Vec<String>,
}

/// A line of a suppressions file that is not a rule, a comment or blank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Counted from 1.
    pub line: usize,
    pub text: String,
    pub problem: Problem,
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The line does not start with `leak:`.
    NotALeakRule,
    /// Nothing follows `leak:`, which would match every site.
    EmptyPattern,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::NotALeakRule => write!(
                f,
                "line {}: expected `leak:PATTERN` or a `#` comment, found `{}`",
                self.line, self.text
            ),
            Problem::EmptyPattern => write!(
                f,
                "line {}: `leak:` needs a pattern (use `leak:*` to suppress everything)",
                self.line
            ),
        }
    }
}

impl std::error::Error for SyntaxError {}

impl Suppressions {
    /// Parses the text of a suppressions file.
    pub fn parse(text: &str) -> Result<Suppressions, SyntaxError> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |problem| SyntaxError {
                line: index + 1,
                text: line.to_owned(),
                problem,
            };
            let pattern = line
                .strip_prefix("leak:")
                .ok_or_else(|| error(Problem::NotALeakRule))?
                .trim();
            if pattern.is_empty() {
                return Err(error(Problem::EmptyPattern));
            }
            rules.push(Rule {
                pattern: pattern.to_owned(),
                pieces: pattern
                    .split('*')
                    .filter(|piece| !piece.is_empty())
                    .map(str::to_owned)
                    .collect(),
            });
        }
        Ok(Suppressions { rules })
    }

    /// Reads and parses a suppressions file.
    pub fn load(path: &Path) -> anyhow::Result<Suppressions> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read the suppressions file `{}`", path.display()))?;
        Suppressions::parse(&text)
            .with_context(|| format!("bad suppressions file `{}`", path.display()))
    }

    /// How many rules there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first pattern that matches any of `frames`, as written.
    #[must_use]
    pub fn matching(&self, frames: &[Frame]) -> Option<&str> {
        self.rules
            .iter()
            .find(|rule| {
                frames.iter().any(|frame| {
                    let module = &frame.module;
                    let file_name = module.rsplit('/').next().unwrap_or(module);
                    frame.function.as_deref().is_some_and(|f| rule.matches(f))
                        || frame.file.as_deref().is_some_and(|f| rule.matches(f))
                        || rule.matches(module)
                        || rule.matches(file_name)
                })
            })
            .map(|rule| rule.pattern.as_str())
    }
}

impl Rule {
    /// Whether the pieces occur in `text` in order, anything around them.
    fn matches(&self, text: &str) -> bool {
        let mut rest = text;
        for piece in &self.pieces {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: Option<&str>, module: &str) -> Frame {
        Frame {
            address: 0x1000,
            function: function.map(str::to_owned),
            module: module.to_owned(),
            offset: None,
            file: None,
            line: None,
        }
    }

    #[test]
    fn patterns_match_inside_function_and_module_names() {
        let rules = Suppressions::parse("# known\n\nleak:load_conf\nleak:libfoo.so\n").unwrap();
        assert_eq!(rules.len(), 2);
        let config = [frame(Some("app::load_config"), "/usr/bin/app")];
        assert_eq!(rules.matching(&config), Some("load_conf"));
        let foo = [
            frame(None, "/opt/lib/libfoo.so.1"),
            frame(Some("main"), "/usr/bin/app"),
        ];
        assert_eq!(rules.matching(&foo), Some("libfoo.so"));
        assert_eq!(rules.matching(&[frame(Some("main"), "/usr/bin/app")]), None);
        let mut vendored = frame(Some("parse"), "/usr/bin/app");
        vendored.file = Some("/src/third_party/libconf/load.c".to_owned());
        let rules = Suppressions::parse("leak:third_party/*").unwrap();
        assert_eq!(rules.matching(&[vendored]), Some("third_party/*"));
    }

    #[test]
    fn stars_match_any_run_of_characters_in_order() {
        let rules = Suppressions::parse("leak:std::*<*Cache*>::insert").unwrap();
        let hit = [frame(
            Some("std::vector<app::CacheEntry>::insert"),
            "/usr/bin/app",
        )];
        let miss = [frame(
            Some("std::vector<app::Entry>::insert_cache"),
            "/usr/bin/app",
        )];
        assert!(rules.matching(&hit).is_some());
        assert!(rules.matching(&miss).is_none());
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_number() {
        let error = Suppressions::parse("# ok\nleak:fine\nrace:other\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert_eq!(
            error.to_string(),
            "line 3: expected `leak:PATTERN` or a `#` comment, found `race:other`"
        );
        assert_eq!(
            Suppressions::parse("leak:   ").unwrap_err().problem,
            Problem::EmptyPattern
        );
    }
}
