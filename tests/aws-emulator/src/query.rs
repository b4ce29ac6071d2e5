//! The AWS Query protocol, both ways: form parameters in (with list and structure
//! flattening), XML results and AWS error documents out. No IO.

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::{DateTime, SecondsFormat, Utc};

/// An AWS error as the Query protocol reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
    /// A 400 client fault.
    pub fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
    /// A 404 fault.
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterValue", message)
    }
    pub fn missing(name: &str) -> Self {
        Self::bad(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }
    pub fn combination(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterCombination", message)
    }
    pub fn throttling() -> Self {
        Self::bad("Throttling", "Rate exceeded")
    }
    pub fn internal() -> Self {
        Self::new(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// The error document, as AWS sends it for Query-protocol services.
    pub fn to_xml(&self, xmlns: &str, request_id: &str) -> String {
        let kind = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        let mut x = Xml::default();
        x.raw(&format!("<ErrorResponse xmlns=\"{xmlns}\">"));
        x.open("Error");
        x.leaf("Type", kind);
        x.leaf("Code", &self.code);
        x.leaf("Message", &self.message);
        x.close("Error");
        x.leaf("RequestId", request_id);
        x.raw("</ErrorResponse>");
        x.finish()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Form parameters of one request (or of one structure inside it).
#[derive(Debug, Clone, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn from_form(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn req(&self, key: &str) -> ApiResult<&str> {
        self.get(key).ok_or_else(|| ApiError::missing(key))
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::invalid_value(format!("Invalid value '{v}' for {key}: not an integer"))
            }),
        }
    }

    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_value(format!(
                "Invalid value '{v}' for {key}: not a boolean"
            ))),
        }
    }

    /// The members of a list parameter, in index order, each as its own `Params`
    /// (a string member is the entry with the empty key). Accepts both
    /// `Key.MemberName.N[.Field]` and flattened `Key.N[.Field]`.
    pub fn members(&self, key: &str) -> Vec<Params> {
        let prefix = format!("{key}.");
        let mut by_index: BTreeMap<u32, Params> = BTreeMap::new();
        for (k, v) in self.0.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            let mut parts = rest.splitn(3, '.');
            let first = parts.next().unwrap_or_default();
            let (index, field) = match first.parse::<u32>() {
                Ok(i) => (i, rest[first.len()..].trim_start_matches('.').to_string()),
                Err(_) => {
                    let Some(Ok(i)) = parts.next().map(str::parse::<u32>) else {
                        continue;
                    };
                    (i, parts.next().unwrap_or_default().to_string())
                }
            };
            by_index
                .entry(index)
                .or_default()
                .0
                .insert(field, v.clone());
        }
        by_index.into_values().collect()
    }

    /// A list of strings.
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.members(key)
            .into_iter()
            .filter_map(|m| m.0.get("").cloned())
            .collect()
    }

    /// A `Tags` list of `{Key, Value}`, each checked against the service's `rules`.
    pub fn tags(&self, key: &str, rules: &TagRules) -> ApiResult<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for m in self.members(key) {
            let k = m.req("Key")?.to_string();
            let v = m.0.get("Value").cloned().unwrap_or_default();
            rules.check(&k, &v)?;
            upsert_tag(&mut out, k, v);
        }
        Ok(out)
    }
}

/// What a service accepts as a tag, and the fault it answers anything else with.
#[derive(Debug, Clone, Copy)]
pub struct TagRules {
    /// The error code of an invalid tag, from the service's model.
    pub code: &'static str,
    /// The punctuation allowed besides Unicode letters, digits and white space.
    pub punctuation: &'static str,
    /// Reserved prefixes (matched in any letter case) that a key may not start with.
    pub reserved: &'static [&'static str],
    /// Whether values may not start with a reserved prefix either.
    pub reserved_in_values: bool,
}

impl TagRules {
    /// AWS's common tag rules: keys of 1 to 128 and values of up to 256 Unicode
    /// characters, made of letters, digits, white space and `_ . : / = + - @` (Java
    /// regex `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`); keys may not start with `aws:`.
    pub const fn common(code: &'static str) -> Self {
        Self {
            code,
            punctuation: "_.:/=+-@",
            reserved: &["aws:"],
            reserved_in_values: false,
        }
    }

    pub fn check(&self, key: &str, value: &str) -> ApiResult<()> {
        let bad = |message: String| Err(ApiError::bad(self.code, message));
        if key.is_empty() || key.chars().count() > 128 {
            return bad(format!("Tag key must be 1 to 128 characters long: '{key}'"));
        }
        if value.chars().count() > 256 {
            return bad(format!(
                "Tag value for '{key}' is longer than 256 characters"
            ));
        }
        let reserved = |s: &str| {
            self.reserved.iter().copied().find(|p| {
                s.get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p))
            })
        };
        if let Some(p) = reserved(key) {
            return bad(format!("Tag keys may not start with '{p}': '{key}'"));
        }
        if self.reserved_in_values
            && let Some(p) = reserved(value)
        {
            return bad(format!("Tag values may not start with '{p}': '{value}'"));
        }
        for (what, s) in [("key", key), ("value", value)] {
            if let Some(c) = s.chars().find(|&c| !self.allows(c)) {
                let allowed: Vec<String> = self.punctuation.chars().map(String::from).collect();
                return bad(format!(
                    "Tag {what} '{s}' contains '{c}' (U+{:04X}): tags may contain only \
                     Unicode letters, digits, white space and {}",
                    c as u32,
                    allowed.join(" ")
                ));
            }
        }
        Ok(())
    }

    /// `\p{L}`, `\p{N}`, `\p{Z}` or the allowed punctuation. `\p{Z}` is white space
    /// without the control characters (tab, line feed and the like are not in it).
    /// Letters are approximated by Unicode's Alphabetic property, which also holds a
    /// few combining vowel signs that `\p{L}` does not.
    fn allows(&self, c: char) -> bool {
        c.is_alphabetic()
            || c.is_numeric()
            || (c.is_whitespace() && !c.is_control())
            || self.punctuation.contains(c)
    }
}

pub fn upsert_tag(tags: &mut Vec<(String, String)>, key: String, value: String) {
    match tags.iter_mut().find(|(k, _)| *k == key) {
        Some(t) => t.1 = value,
        None => tags.push((key, value)),
    }
}

/// A small XML writer: elements and escaped text, nothing else.
#[derive(Debug, Default)]
pub struct Xml(String);

impl Xml {
    pub fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }
    pub fn open(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn close(&mut self, tag: &str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn leaf(&mut self, tag: &str, value: impl Display) {
        self.open(tag);
        self.0
            .push_str(&quick_xml::escape::escape(value.to_string().as_str()));
        self.close(tag);
    }
    pub fn opt<T: Display>(&mut self, tag: &str, value: Option<T>) {
        if let Some(v) = value {
            self.leaf(tag, v);
        }
    }
    pub fn time(&mut self, tag: &str, t: DateTime<Utc>) {
        self.leaf(tag, t.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    /// `<Outer><Member>v</Member>...</Outer>`
    pub fn strings<'a>(
        &mut self,
        outer: &str,
        member: &str,
        values: impl IntoIterator<Item = &'a String>,
    ) {
        self.open(outer);
        for v in values {
            self.leaf(member, v);
        }
        self.close(outer);
    }
    pub fn tags(&mut self, outer: &str, tags: &[(String, String)]) {
        self.open(outer);
        for (k, v) in tags {
            self.open("Tag");
            self.leaf("Key", k);
            self.leaf("Value", v);
            self.close("Tag");
        }
        self.close(outer);
    }
    pub fn finish(self) -> String {
        self.0
    }
}

/// What an action answers: the inside of its `<ActionResult>` element, or nothing for
/// actions without an output shape.
pub type Reply = Option<Xml>;

/// A successful Query response.
pub fn response(action: &str, xmlns: &str, request_id: &str, result: Reply) -> String {
    let mut x = Xml::default();
    x.raw(&format!("<{action}Response xmlns=\"{xmlns}\">"));
    if let Some(body) = result {
        let wrapper = format!("{action}Result");
        x.open(&wrapper);
        x.raw(&body.finish());
        x.close(&wrapper);
    }
    x.open("ResponseMetadata");
    x.leaf("RequestId", request_id);
    x.close("ResponseMetadata");
    x.close(&format!("{action}Response"));
    x.finish()
}

/// Marker paging, as these services page their Describe calls: a response holds at
/// most `MaxRecords` items (each action's model gives its default and its "minimum
/// 20, maximum 100" or "minimum 20; maximum 50" range) and, when more remain, a
/// `Marker` to pass back for the next page. AWS's markers are opaque tokens of its own
/// making ("a pagination token provided by a previous request", DocumentDB's
/// DescribeDBClusterSnapshots Marker), so the emulator issues opaque ones too: the key
/// of the next page's first item, bound to the action, account and region and sealed
/// with a keyed hash only this emulator knows. A marker it did not issue (made up,
/// tampered with, or issued for another action, account or region) is refused with
/// `InvalidParameterValue` (HTTP 400): ElastiCache's Describe* list it
/// (InvalidParameterValueException); for Redshift and DocumentDB it is the services'
/// common error "An invalid or out-of-range value was supplied for the input
/// parameter".
#[derive(Debug, Clone)]
pub struct Paging {
    secret: std::hash::RandomState,
    /// The emulator's page size (the `pageSize` setting): a response holds at most this
    /// many items (clamped to each action's MaxRecords range) whatever `MaxRecords`
    /// asks. AWS may return fewer records than `MaxRecords` ("the maximum number of
    /// response records to return in each call"), with a marker. None: `MaxRecords`
    /// or the action's default alone decide.
    pub page_size: Option<i64>,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            secret: std::hash::RandomState::new(),
            page_size: None,
        }
    }
}

/// One Describe call's paging: where its page starts and how long it is.
#[derive(Debug, Clone)]
pub struct Pager {
    scope: String,
    size: usize,
    start: Option<String>,
    secret: std::hash::RandomState,
}

const MARKER_PREFIX: &str = "emu1";

fn seal(secret: &std::hash::RandomState, scope: &str, key: &str) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = secret.build_hasher();
    scope.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

impl Paging {
    /// Reads `MaxRecords` and `Marker` for a call of `scope` (service, action, account
    /// and region). `Ok((pager, followed))`: `followed` says a marker was passed.
    pub fn begin(
        &self,
        scope: &str,
        params: &Params,
        (min, max, default): (i64, i64, i64),
    ) -> ApiResult<(Pager, bool)> {
        let size = params.int("MaxRecords")?.unwrap_or(default);
        if !(min..=max).contains(&size) {
            return Err(ApiError::invalid_value(format!(
                "MaxRecords must be between {min} and {max}, got {size}"
            )));
        }
        let size = match self.page_size {
            Some(cap) => size.min(cap.clamp(min, max)),
            None => size,
        };
        let start = match params.get("Marker") {
            None => None,
            Some(m) => Some(self.open(scope, m).ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "The parameter Marker is not valid: {m} is not a marker a previous \
                     request of this kind returned"
                ))
            })?),
        };
        let followed = start.is_some();
        Ok((
            Pager {
                scope: scope.to_string(),
                size: size as usize,
                start,
                secret: self.secret.clone(),
            },
            followed,
        ))
    }

    /// The key a marker this emulator issued for `scope` stands for.
    fn open(&self, scope: &str, marker: &str) -> Option<String> {
        let rest = marker.strip_prefix(MARKER_PREFIX)?;
        let (mac, hex) = (rest.get(..16)?, rest.get(16..)?);
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let key = String::from_utf8(bytes).ok()?;
        (format!("{:016x}", seal(&self.secret, scope, &key)) == mac).then_some(key)
    }
}

impl Pager {
    /// This call's page of `items` (sorted by `key`) and the marker of the next page,
    /// if any.
    pub fn page<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        items.sort_by_key(&key);
        if let Some(start) = &self.start {
            let at = items.iter().position(|i| key(i).as_str() >= start.as_str());
            items.drain(..at.unwrap_or(items.len()));
        }
        let next = items.get(self.size).map(|i| self.marker(&key(i)));
        items.truncate(self.size);
        (items, next)
    }

    fn marker(&self, key: &str) -> String {
        let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        format!(
            "{MARKER_PREFIX}{:016x}{hex}",
            seal(&self.secret, &self.scope, key)
        )
    }
}

/// AWS's identifier rule shared by these services: 1..=max characters, ASCII letters,
/// digits and hyphens, a letter first, no trailing hyphen and no two hyphens in a row.
pub fn check_identifier(param: &str, value: &str, max: usize) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !value.ends_with('-')
        && !value.contains("--");
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_value(format!(
            "The parameter {param} is not a valid identifier. Identifiers must begin with a \
             letter; must contain only ASCII letters, digits, and hyphens; must not end with a \
             hyphen or contain two consecutive hyphens; and must be 1 to {max} characters long."
        )))
    }
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_named_and_flattened_lists() {
        let p = Params::from_pairs([
            ("Tags.Tag.2.Key", "b"),
            ("Tags.Tag.1.Key", "a"),
            ("Tags.Tag.1.Value", "1"),
            ("TagKeys.member.1", "x"),
            ("TagKeys.member.2", "y"),
            ("Filters.Filter.1.Name", "db-cluster-id"),
            ("Filters.Filter.1.Values.Value.1", "c1"),
            ("Flat.1", "f"),
        ]);
        assert_eq!(
            p.tags("Tags", &TagRules::common("InvalidTagFault"))
                .unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "".into())]
        );
        assert_eq!(p.strings("TagKeys"), vec!["x", "y"]);
        assert_eq!(p.strings("Flat"), vec!["f"]);
        let f = p.members("Filters");
        assert_eq!(f[0].get("Name"), Some("db-cluster-id"));
        assert_eq!(f[0].strings("Values"), vec!["c1"]);
    }

    #[test]
    fn tags_follow_the_services_character_sets() {
        let common = TagRules::common("InvalidTagFault");
        for (k, v) in [
            ("team", ""),
            ("ünï 漢字 ٣", "a_b.c:d/e=f+g-h@i"),
            ("no\u{a0}break", "em\u{2003}space"),
            ("x:aws:y", "aws:value"),
        ] {
            assert!(common.check(k, v).is_ok(), "{k}={v}");
        }
        for (k, v) in [
            ("", "v"),
            ("aws:k", "v"),
            ("AWS:k", "v"),
            ("k<", "v"),
            ("k", "&"),
            ("k", "🙂"),
            ("k", "tab\t"),
            ("k", "e\u{301}"),
            ("k", "%20"),
        ] {
            let e = common.check(k, v).unwrap_err();
            assert_eq!(e.code, "InvalidTagFault", "{k}={v}");
        }
        let docdb = TagRules {
            code: "InvalidParameterValue",
            punctuation: "_.:/=+-",
            reserved: &["aws:", "rds:"],
            reserved_in_values: true,
        };
        assert!(docdb.check("k", "a_b.c:d/e=f+g-h").is_ok());
        for (k, v) in [("k", "a@b"), ("rds:k", "v"), ("k", "rds:v"), ("k", "Aws:v")] {
            assert_eq!(docdb.check(k, v).unwrap_err().code, "InvalidParameterValue");
        }
    }

    #[test]
    fn identifiers_follow_aws_rules() {
        for ok in ["a", "a-1", "Abc9", &"a".repeat(63)] {
            assert!(check_identifier("X", ok, 63).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "a-", "a--b", "a_b", "ä", &"a".repeat(64)] {
            assert!(check_identifier("X", bad, 63).is_err(), "{bad}");
        }
    }

    fn walk(paging: &Paging, scope: &str, items: &[String], max: &str) -> (Vec<String>, usize) {
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut pairs = vec![("MaxRecords", max)];
            if let Some(m) = &marker {
                pairs.push(("Marker", m.as_str()));
            }
            let p = Params::from_pairs(pairs);
            let (pager, followed) = paging.begin(scope, &p, (20, 100, 100)).unwrap();
            assert_eq!(followed, marker.is_some());
            let (got, next) = pager.page(items.to_vec(), |s| s.clone());
            pages += 1;
            seen.extend(got);
            match next {
                Some(n) => marker = Some(n),
                None => break,
            }
        }
        (seen, pages)
    }

    #[test]
    fn paging_walks_every_item_once() {
        let items: Vec<String> = (0..45).map(|i| format!("s{i:03}")).collect();
        let mut paging = Paging::default();
        assert_eq!(walk(&paging, "rs:D", &items, "20"), (items.clone(), 3));
        assert_eq!(walk(&paging, "rs:D", &items, "100"), (items.clone(), 1));
        // The emulator's page size caps MaxRecords, within the action's range.
        paging.page_size = Some(20);
        assert_eq!(walk(&paging, "rs:D", &items, "100"), (items.clone(), 3));
        paging.page_size = Some(5);
        assert_eq!(walk(&paging, "rs:D", &items, "100"), (items.clone(), 3));
        let p = Params::from_pairs([("MaxRecords", "5")]);
        assert_eq!(
            paging.begin("rs:D", &p, (20, 100, 100)).unwrap_err().code,
            "InvalidParameterValue"
        );
    }

    #[test]
    fn markers_are_refused_unless_this_emulator_issued_them_for_this_call() {
        let items: Vec<String> = (0..45).map(|i| format!("s{i:03}")).collect();
        let paging = Paging::default();
        let p = Params::from_pairs([("MaxRecords", "20")]);
        let (pager, _) = paging.begin("rs:D:1:us", &p, (20, 100, 100)).unwrap();
        let marker = pager.page(items, |s| s.clone()).1.unwrap();
        assert!(!marker.contains("s020"), "opaque: {marker}");
        let with = |m: &str| Params::from_pairs([("Marker", m)]);
        assert!(
            paging
                .begin("rs:D:1:us", &with(&marker), (20, 100, 100))
                .is_ok()
        );
        let mut tampered = marker.clone();
        tampered.pop();
        tampered.push('1');
        for bad in [
            "s020".to_string(),
            tampered,
            format!("{marker}00"),
            "emu1zz".to_string(),
        ] {
            let e = paging
                .begin("rs:D:1:us", &with(&bad), (20, 100, 100))
                .unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{bad}");
        }
        // Another action, account or region, or another emulator.
        assert!(
            paging
                .begin("rs:E:1:us", &with(&marker), (20, 100, 100))
                .is_err()
        );
        assert!(
            paging
                .begin("rs:D:2:us", &with(&marker), (20, 100, 100))
                .is_err()
        );
        assert!(
            Paging::default()
                .begin("rs:D:1:us", &with(&marker), (20, 100, 100))
                .is_err()
        );
    }

    #[test]
    fn errors_render_as_aws_error_documents() {
        let e = ApiError::not_found("ClusterSnapshotNotFound", "Snapshot <x> not found");
        let xml = e.to_xml("http://redshift.amazonaws.com/doc/2012-12-01/", "r1");
        assert!(xml.contains("<Code>ClusterSnapshotNotFound</Code>"));
        assert!(xml.contains("Snapshot &lt;x&gt; not found"));
        assert!(xml.contains("<Type>Sender</Type>"));
    }
}
