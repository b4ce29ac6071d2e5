//! AWS STS, the one call a client makes to learn whose credentials it holds:
//! GetCallerIdentity (the account comes from the access key, as for every service here).

use crate::query::{ApiError, ApiResult, Reply, Xml};
use crate::state::Caller;

pub const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub fn handle(c: &Caller, action: &str) -> ApiResult<Reply> {
    match action {
        "GetCallerIdentity" => {
            let mut x = Xml::default();
            x.leaf("Arn", format!("arn:aws:iam::{}:user/caller", c.account));
            x.leaf("UserId", format!("AIDA{}", c.account));
            x.leaf("Account", &c.account);
            Ok(Some(x))
        }
        _ => Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}
