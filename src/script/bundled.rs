//! The scripts shipped inside the binary (`include_str!` of `scripts/*.rhai`, so the embedded
//! copies are the repository's files byte for byte), and script-name resolution.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::Source;

pub struct Bundled {
    pub name: &'static str,
    pub text: &'static str,
}

pub const BUNDLED: &[Bundled] = &[
    Bundled {
        name: "add_user",
        text: include_str!("../../scripts/add_user.rhai"),
    },
    Bundled {
        name: "list_users",
        text: include_str!("../../scripts/list_users.rhai"),
    },
    Bundled {
        name: "repopulate",
        text: include_str!("../../scripts/repopulate.rhai"),
    },
    Bundled {
        name: "stress",
        text: include_str!("../../scripts/stress.rhai"),
    },
    Bundled {
        name: "user_stats",
        text: include_str!("../../scripts/user_stats.rhai"),
    },
];

pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}

impl Bundled {
    /// The first line of the script's opening comment.
    /// The opening comment's first line without the `name:` it starts with.
    pub fn summary(&self) -> String {
        let line = self
            .text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("//"))
            .map(|l| l.trim_start_matches('/').trim())
            .unwrap_or_default();
        line.strip_prefix(self.name)
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or(line)
            .trim()
            .to_string()
    }

    pub fn file_name(&self) -> String {
        format!("{}.rhai", self.name)
    }
}

/// Where a script name led.
pub struct Resolved {
    pub source: Source,
    /// A `./scripts/<name>.rhai` that shadows a bundled script of the same name.
    pub overrides_bundled: bool,
}

/// An existing file path first, then `./scripts/<name>.rhai`, then the bundled copy; `.rhai`
/// may be omitted.
pub fn resolve(name: &str) -> Result<Resolved> {
    let path = Path::new(name);
    if path.is_file() {
        return from_file(path, None);
    }
    let stem = name.strip_suffix(".rhai").unwrap_or(name);
    let with_ext = PathBuf::from(format!("{stem}.rhai"));
    if with_ext.is_file() {
        return from_file(&with_ext, None);
    }
    let simple = !stem.contains('/') && !stem.is_empty();
    if simple {
        let local = Path::new("scripts").join(format!("{stem}.rhai"));
        if local.is_file() {
            return from_file(&local, find(stem));
        }
        if let Some(b) = find(stem) {
            return Ok(Resolved {
                source: Source {
                    name: format!("{} (bundled)", b.file_name()),
                    text: b.text.to_string(),
                    dir: None,
                },
                overrides_bundled: false,
            });
        }
    }
    let names: Vec<&str> = BUNDLED.iter().map(|b| b.name).collect();
    Err(Error::Usage(format!(
        "no script `{name}`: it is not a file, not ./scripts/{stem}.rhai, and not a bundled script \
         (bundled: {})",
        names.join(", ")
    )))
}

/// For the seed-compatible commands: `./scripts/<name>.rhai` when it exists, else the bundled
/// script (a file in the working directory that happens to share the name is not considered).
pub fn resolve_flow(name: &str) -> Resolved {
    let local = Path::new("scripts").join(format!("{name}.rhai"));
    if local.is_file() {
        if let Ok(r) = from_file(&local, find(name)) {
            return r;
        }
    }
    let b = find(name).expect("every flow has a bundled script");
    Resolved {
        source: Source {
            name: format!("{} (bundled)", b.file_name()),
            text: b.text.to_string(),
            dir: None,
        },
        overrides_bundled: false,
    }
}

/// A script file; `shadows` is the bundled script of the same name, if any. A copy identical
/// to it does not count as an override.
fn from_file(path: &Path, shadows: Option<&Bundled>) -> Result<Resolved> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let overrides_bundled = shadows.is_some_and(|b| b.text != text);
    Ok(Resolved {
        source: Source {
            name: path.display().to_string(),
            text,
            dir: path.parent().map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            }),
        },
        overrides_bundled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_script_documents_itself() {
        for b in BUNDLED {
            assert!(!b.summary().is_empty(), "{} has no opening comment", b.name);
            assert!(
                b.text.contains("ARGS") || b.name == "list_users",
                "{} does not mention ARGS",
                b.name
            );
        }
    }

    #[test]
    fn embedded_copies_match_the_repository_files() {
        for b in BUNDLED {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(b.file_name());
            assert_eq!(std::fs::read_to_string(path).unwrap(), b.text, "{}", b.name);
        }
    }
}
