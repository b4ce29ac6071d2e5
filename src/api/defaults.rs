//! The operator's defaults for what a spec leaves out: the deletion policy
//! (`--default-deletion-policy`) and tags (`--default-tags`). No IO.

use super::validation::{MAX_TAGS, SpecError, check_tags};
use super::{DeletionPolicy, Engine, Tags};

/// What the operator applies where a spec says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// For objects whose spec has no `deletionPolicy`, fixed when first recorded.
    pub deletion_policy: DeletionPolicy,
    /// Put on every snapshot the operator makes; a key in `spec.tags` wins.
    pub tags: Tags,
}

impl Defaults {
    /// Parses `--default-tags`: `key=value` pairs separated by commas (AWS tags hold no
    /// comma). A key ends at its first `=`; white space around keys and values is
    /// dropped. Empty: no default tags.
    pub fn parse_tags(text: &str) -> Result<Tags, String> {
        let mut tags = Tags::new();
        for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!(
                    "{pair:?} is not key=value: give the default tags as key=value pairs separated by commas"
                ));
            };
            let (k, v) = (k.trim(), v.trim());
            if tags.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("tag key {k:?} is given twice"));
            }
        }
        Ok(tags)
    }

    /// Checks the default tags against the rules of every engine (DocumentDB's are the
    /// strictest: no `@`, nothing starting with `aws:` or `rds:`), so that a default tag
    /// cannot stop one engine's snapshots later: the message names the tag and says
    /// what AWS allows.
    pub fn check(&self) -> Result<(), String> {
        check_tags(&self.tags, Some(Engine::Docdb)).map_err(|e| {
            let what = e.field.replace("spec.tags", "default tag");
            format!("{what}: {}", e.message)
        })
    }

    /// The deletion policy in force: the spec's; else the one recorded in the status
    /// (this default, fixed before the snapshot was made, so that changing the
    /// operator's default does not change what happens to existing snapshots); else
    /// this default.
    pub fn deletion_policy(
        &self,
        spec: Option<DeletionPolicy>,
        recorded: Option<DeletionPolicy>,
    ) -> DeletionPolicy {
        spec.or(recorded).unwrap_or(self.deletion_policy)
    }

    /// The tags kept on a snapshot: `spec` over the default tags. Refused, naming
    /// `spec.tags`, when together they are more than AWS leaves room for (or a default
    /// tag breaks the engine's rules, which [`Defaults::check`] rules out at start).
    pub fn tags(&self, spec: &Tags, engine: Option<Engine>) -> Result<Tags, SpecError> {
        let added: Tags = self
            .tags
            .iter()
            .filter(|(k, _)| !spec.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if added.is_empty() {
            return Ok(spec.clone());
        }
        if spec.len() + added.len() > MAX_TAGS {
            return Err(SpecError::new(
                "spec.tags",
                format!(
                    "{} tags and the operator's {} default tags ({}) make {}; at most {MAX_TAGS} \
                     are allowed (AWS allows 50 and the operator adds two): remove tags, or \
                     give a default tag's key in spec.tags to override it",
                    spec.len(),
                    added.len(),
                    added.keys().cloned().collect::<Vec<_>>().join(", "),
                    spec.len() + added.len()
                ),
            ));
        }
        check_tags(&added, engine).map_err(|e| {
            SpecError::new(
                "spec.tags",
                format!(
                    "the operator's default {}: {}; give its key in spec.tags to override it, \
                     or change the operator's --default-tags",
                    e.field.replace("spec.tags", "tag"),
                    e.message
                ),
            )
        })?;
        let mut tags = added;
        tags.extend(spec.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_tags_parse_as_comma_separated_pairs() {
        assert_eq!(Defaults::parse_tags("").unwrap(), Tags::new());
        assert_eq!(
            Defaults::parse_tags("team=data, cost-center = 42,expr=a=b,").unwrap(),
            tags(&[("team", "data"), ("cost-center", "42"), ("expr", "a=b")])
        );
        assert_eq!(
            Defaults::parse_tags("empty=").unwrap(),
            tags(&[("empty", "")])
        );
        let e = Defaults::parse_tags("team=data,oops").unwrap_err();
        assert!(e.contains("\"oops\" is not key=value"), "{e}");
        let e = Defaults::parse_tags("a=1,a=2").unwrap_err();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn default_tags_follow_the_rules_of_every_engine() {
        let ok = Defaults {
            tags: tags(&[("team", "data platform"), ("cost-center", "42/x=y")]),
            ..Default::default()
        };
        assert_eq!(ok.check(), Ok(()));
        for (k, v, want) in [
            ("aws:team", "x", "reserved"),
            ("dbsnapshot.io/x", "x", "reserved"),
            ("team", "a;b", "';' is not allowed"),
            ("", "x", "1 to 128"),
            // DocumentDB's rules, the strictest.
            (
                "owner",
                "ops@example",
                "'@' is not allowed in a DocumentDB tag",
            ),
            ("rds:team", "x", "may not start with aws: or rds:"),
            ("team", "rds:x", "may not start with aws: or rds:"),
        ] {
            let d = Defaults {
                tags: tags(&[(k, v)]),
                ..Default::default()
            };
            let e = d.check().unwrap_err();
            assert!(
                e.starts_with(&format!("default tag[{k}]")) && e.contains(want),
                "{k}={v}: {e}"
            );
        }
    }

    #[test]
    fn the_spec_wins_then_the_record_then_the_default() {
        use DeletionPolicy::{Delete, Retain};
        let d = Defaults {
            deletion_policy: Retain,
            ..Default::default()
        };
        assert_eq!(d.deletion_policy(None, None), Retain);
        assert_eq!(d.deletion_policy(None, Some(Delete)), Delete);
        assert_eq!(d.deletion_policy(Some(Delete), Some(Retain)), Delete);
        assert_eq!(d.deletion_policy(Some(Retain), None), Retain);
        assert_eq!(Defaults::default().deletion_policy(None, None), Delete);
    }

    #[test]
    fn spec_tags_win_over_default_tags() {
        let d = Defaults {
            tags: tags(&[("team", "platform"), ("cost-center", "42")]),
            ..Default::default()
        };
        assert_eq!(
            d.tags(&tags(&[("team", "data")]), Some(Engine::Redshift))
                .unwrap(),
            tags(&[("team", "data"), ("cost-center", "42")])
        );
        assert_eq!(
            Defaults::default()
                .tags(&tags(&[("a", "b")]), None)
                .unwrap(),
            tags(&[("a", "b")])
        );
    }

    #[test]
    fn default_tags_count_toward_the_limit_unless_overridden() {
        let d = Defaults {
            tags: tags(&[("x", "1"), ("y", "2")]),
            ..Default::default()
        };
        let full: Tags = (0..47)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let e = d.tags(&full, None).unwrap_err();
        assert_eq!(e.field, "spec.tags");
        assert!(
            e.message
                .contains("47 tags and the operator's 2 default tags (x, y) make 49"),
            "{e}"
        );
        let mut overriding = full.clone();
        overriding.remove("k0");
        overriding.insert("x".into(), "mine".into());
        assert_eq!(d.tags(&overriding, None).unwrap().len(), 48);
    }

    #[test]
    fn a_default_tag_documentdb_refuses_names_the_operator_setting() {
        // Refused at start by `check`; should one get this far, the object says why.
        let d = Defaults {
            tags: tags(&[("owner", "data@example")]),
            ..Default::default()
        };
        assert!(d.tags(&Tags::new(), Some(Engine::Redshift)).is_ok());
        let e = d.tags(&Tags::new(), Some(Engine::Docdb)).unwrap_err();
        assert_eq!(e.field, "spec.tags");
        assert!(
            e.message
                .starts_with("the operator's default tag[owner]: '@' is not allowed")
                && e.message.contains("--default-tags"),
            "{e}"
        );
        // Overridden in the spec, it is not applied, so not checked.
        assert!(
            d.tags(&tags(&[("owner", "data")]), Some(Engine::Docdb))
                .is_ok()
        );
    }
}
