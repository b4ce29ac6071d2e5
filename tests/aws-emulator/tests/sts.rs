//! STS through the official Rust SDK: AssumeRole hands out temporary credentials of
//! the role's account when the role trusts the caller, GetCallerIdentity says whose
//! credentials they are, and every later call checks them (token, expiry).

mod common;

use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use common::*;
use serde_json::json;

const DR_ROLE: &str = "arn:aws:iam::210987654321:role/ops/dbsnapshot-dr";
const CALLER: &str = "123456789012";

async fn sts(emu: &Emu, key: &str) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&emu.config("us-east-1", key).await)
}

async fn sts_as(emu: &Emu, creds: Credentials) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(
        &config_with(&emu.url, "us-east-1", creds, RetryConfig::disabled()).await,
    )
}

async fn put_role(emu: &Emu, role: serde_json::Value) {
    let r = emu.admin_post("roles", role).await;
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

fn temporary(out: &aws_sdk_sts::operation::assume_role::AssumeRoleOutput) -> Credentials {
    let c = out.credentials().expect("credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "assumed",
    )
}

#[tokio::test]
async fn assume_role_hands_out_credentials_of_the_roles_account() {
    let emu = emulator(0.0).await;
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER]}),
    )
    .await;
    let me = sts(&emu, KEY)
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(CALLER));
    assert_eq!(me.arn(), Some("arn:aws:iam::123456789012:user/caller"));

    let out = sts(&emu, KEY)
        .await
        .assume_role()
        .role_arn(DR_ROLE)
        .role_session_name("dbsnapshot-operator")
        .duration_seconds(1800)
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    assert!(c.access_key_id().starts_with("ASIA"), "{c:?}");
    assert_eq!(c.access_key_id().len(), 20);
    assert_eq!(c.secret_access_key().len(), 40);
    assert!(!c.session_token().is_empty());
    let lasts = c.expiration().secs() - aws_smithy_now();
    assert!((1790..=1800).contains(&lasts), "lasts {lasts} s");
    let user = out.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        "arn:aws:sts::210987654321:assumed-role/dbsnapshot-dr/dbsnapshot-operator"
    );
    assert!(
        user.assumed_role_id().starts_with("AROA")
            && user.assumed_role_id().ends_with(":dbsnapshot-operator"),
        "{user:?}"
    );

    // The temporary credentials are the role's account's, for every service.
    let creds = temporary(&out);
    let who = sts_as(&emu, creds.clone())
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.account(), Some(OTHER_ACCOUNT));
    assert_eq!(who.arn(), Some(user.arn()));
    assert_eq!(who.user_id(), Some(user.assumed_role_id()));
    let before = emu.admin_get("calls").await["callsByAccount"][OTHER_ACCOUNT]
        .as_u64()
        .unwrap_or(0);
    let db = aws_sdk_docdb::Client::new(
        &config_with(&emu.url, "eu-west-1", creds, RetryConfig::disabled()).await,
    );
    db.describe_db_cluster_snapshots().send().await.unwrap();
    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["callsByAccount"][OTHER_ACCOUNT], before + 1);
    assert_eq!(calls["calls"]["sts"]["AssumeRole"], 1);
}

#[tokio::test]
async fn untrusted_callers_wrong_external_ids_and_missing_roles_are_denied() {
    let emu = emulator(0.0).await;
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER]}),
    )
    .await;
    let assume = |key: &'static str, arn: &'static str, external: Option<&'static str>| {
        let emu = &emu;
        async move {
            sts(emu, key)
                .await
                .assume_role()
                .role_arn(arn)
                .role_session_name("s1")
                .set_external_id(external.map(str::to_string))
                .send()
                .await
        }
    };
    // The role's own account is not trusted by it (only 123456789012 is).
    let (denied, message) = error(assume(OTHER_KEY, DR_ROLE, None).await);
    assert_eq!(denied, "AccessDenied");
    assert_eq!(
        message,
        format!(
            "User: arn:aws:iam::210987654321:user/caller is not authorized to perform: \
             sts:AssumeRole on resource: {DR_ROLE}"
        )
    );
    let missing = "arn:aws:iam::210987654321:role/nobody";
    assert_eq!(code(assume(KEY, missing, None).await), "AccessDenied");

    // A trust policy that wants an external id.
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER], "externalId": "team-a-7f3"}),
    )
    .await;
    assert_eq!(code(assume(KEY, DR_ROLE, None).await), "AccessDenied");
    assert_eq!(
        code(assume(KEY, DR_ROLE, Some("team-b-7f3")).await),
        "AccessDenied"
    );
    assume(KEY, DR_ROLE, Some("team-a-7f3")).await.unwrap();

    // A deleted role is denied; deleting it twice is 404.
    let r = emu.admin_delete("roles", json!({"roleArn": DR_ROLE})).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        code(assume(KEY, DR_ROLE, Some("team-a-7f3")).await),
        "AccessDenied"
    );
    let r = emu.admin_delete("roles", json!({"roleArn": DR_ROLE})).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn assume_role_requests_are_validated_as_the_sts_model_says() {
    let emu = emulator(0.0).await;
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER]}),
    )
    .await;
    let chained = "arn:aws:iam::123456789012:role/chained";
    put_role(
        &emu,
        json!({"roleArn": chained, "trustedAccounts": [OTHER_ACCOUNT], "maxSessionDuration": 43200}),
    )
    .await;
    let client = sts(&emu, KEY).await;
    let try_assume = |session: &str, seconds: Option<i32>, external: Option<&str>| {
        client
            .assume_role()
            .role_arn(DR_ROLE)
            .role_session_name(session)
            .set_duration_seconds(seconds)
            .set_external_id(external.map(str::to_string))
            .send()
    };
    for (session, seconds, external, words) in [
        ("s", None, None, "Value 's' at 'roleSessionName'"),
        ("has space", None, None, "regular expression pattern"),
        ("ok", Some(899), None, "greater than or equal to 900"),
        ("ok", Some(43201), None, "less than or equal to 43200"),
        ("ok", None, Some("x"), "at 'externalId'"),
        // The role's MaxSessionDuration is IAM's default, one hour.
        ("ok", Some(7200), None, "MaxSessionDuration"),
    ] {
        let (code, message) = error(try_assume(session, seconds, external).await);
        assert_eq!(code, "ValidationError", "{session} {seconds:?}: {message}");
        assert!(message.contains(words), "{session} {seconds:?}: {message}");
    }
    let (code, _) = error(
        client
            .assume_role()
            .role_arn("arn:aws:iam::1:role/x")
            .role_session_name("ok")
            .send()
            .await,
    );
    assert_eq!(code, "ValidationError");

    // Role chaining: a role's session may assume another role, for an hour at most.
    let first = try_assume("first", None, None).await.unwrap();
    let second = sts_as(&emu, temporary(&first)).await;
    let (code, message) = error(
        second
            .assume_role()
            .role_arn(chained)
            .role_session_name("second")
            .duration_seconds(7200)
            .send()
            .await,
    );
    assert_eq!(code, "ValidationError");
    assert!(message.contains("role chaining"), "{message}");
    let out = second
        .assume_role()
        .role_arn(chained)
        .role_session_name("second")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.assumed_role_user().unwrap().arn(),
        "arn:aws:sts::123456789012:assumed-role/chained/second"
    );
}

#[tokio::test]
async fn temporary_credentials_are_checked_on_every_call() {
    let emu = emulator(0.0).await;
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER]}),
    )
    .await;
    let client = sts(&emu, KEY).await;
    let out = client
        .assume_role()
        .role_arn(DR_ROLE)
        .role_session_name("s1")
        .send()
        .await
        .unwrap();
    let good = temporary(&out);
    let with_token = |key: &str, token: Option<&str>| {
        Credentials::new(
            key,
            good.secret_access_key(),
            token.map(str::to_string),
            None,
            "t",
        )
    };
    let calls_before = emu.admin_get("calls").await["callsByAccount"].clone();
    for (creds, what) in [
        (
            with_token(good.access_key_id(), Some("IQoJwrong")),
            "a wrong token",
        ),
        (with_token(good.access_key_id(), None), "no token"),
        (
            with_token("ASIAUNKNOWN210987654321", Some("x")),
            "an unknown key",
        ),
        (
            with_token(KEY, Some("IQoJb3JpZ2luX2Vj")),
            "a token on a long-term key",
        ),
    ] {
        let (code, message) = error(sts_as(&emu, creds).await.get_caller_identity().send().await);
        assert_eq!(code, "InvalidClientTokenId", "{what}");
        assert_eq!(
            message, "The security token included in the request is invalid.",
            "{what}"
        );
    }
    let calls = emu.admin_get("calls").await;
    assert_eq!(calls["refusedCredentials"], 4);
    // Refused calls count for no account.
    assert_eq!(calls["callsByAccount"], calls_before);

    // Expiry: from now on sessions last one second.
    let r = emu
        .admin_post("settings", json!({"sessionSeconds": 1.0}))
        .await;
    assert!(r.status().is_success());
    let short = client
        .assume_role()
        .role_arn(DR_ROLE)
        .role_session_name("s2")
        .send()
        .await
        .unwrap();
    let short_client = sts_as(&emu, temporary(&short)).await;
    short_client.get_caller_identity().send().await.unwrap();
    sleep_secs(1.2).await;
    assert_eq!(
        code(short_client.get_caller_identity().send().await),
        "ExpiredToken"
    );
    // The first credentials were handed out for an hour, before the setting.
    sts_as(&emu, good)
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap();
}

/// The SDK's own AssumeRoleProvider behind its identity cache: credentials that expire
/// are refreshed before they do, and no call fails.
#[tokio::test]
async fn the_sdk_refreshes_assumed_credentials_before_they_expire() {
    let emu = emulator(0.0).await;
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER]}),
    )
    .await;
    emu.admin_post("settings", json!({"sessionSeconds": 3.0}))
        .await;
    let base = emu.config("us-east-1", KEY).await;
    let provider = AssumeRoleProvider::builder(DR_ROLE)
        .session_name("refresh")
        .configure(&base)
        .build()
        .await;
    let cfg = base
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .identity_cache(
            IdentityCache::lazy()
                .buffer_time(Duration::from_secs(1))
                .build(),
        )
        .build();
    let db = aws_sdk_docdb::Client::new(&cfg);
    let until = std::time::Instant::now() + Duration::from_secs(8);
    let mut n = 0;
    while std::time::Instant::now() < until {
        db.describe_db_cluster_snapshots()
            .send()
            .await
            .unwrap_or_else(|e| panic!("call {n} failed: {e:?}"));
        n += 1;
        sleep_secs(0.25).await;
    }
    let calls = emu.admin_get("calls").await;
    let assumed = calls["calls"]["sts"]["AssumeRole"].as_u64().unwrap();
    assert!(
        (3..n).contains(&assumed),
        "{assumed} AssumeRole calls for {n} calls"
    );
    assert_eq!(calls["refusedCredentials"], 0);
    assert_eq!(calls["callsByAccount"][OTHER_ACCOUNT], n);
}

#[tokio::test]
async fn roles_are_checked_by_the_admin_api() {
    let emu = emulator(0.0).await;
    for (bad, words) in [
        (
            json!({"roleArn": "arn:aws:iam::21098765432:role/x"}),
            "not a role ARN",
        ),
        (
            json!({"roleArn": DR_ROLE, "trustedAccounts": ["12"]}),
            "trustedAccounts",
        ),
        (
            json!({"roleArn": DR_ROLE, "maxSessionDuration": 60}),
            "maxSessionDuration",
        ),
        (
            json!({"roleArn": DR_ROLE, "trust": [CALLER]}),
            "unknown field",
        ),
    ] {
        let r = emu.admin_post("roles", bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        let text = r.text().await.unwrap();
        assert!(text.contains(words), "{bad}: {text}");
    }
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER]}),
    )
    .await;
    let roles = emu.admin_get("roles").await;
    assert_eq!(roles[0]["roleArn"], DR_ROLE);
    assert_eq!(roles[0]["maxSessionDuration"], 3600);
    // A reset keeps roles, as it keeps settings.
    emu.admin_post("reset", json!({})).await;
    assert_eq!(emu.admin_get("roles").await.as_array().unwrap().len(), 1);
}

/// Seconds since the epoch now.
fn aws_smithy_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A DR account's role copies a snapshot of the source account: only once the source
/// shares it with the role's account, with KmsKeyId for an encrypted source, and the
/// copy belongs to the role's account.
#[tokio::test]
async fn an_assumed_role_copies_only_what_is_shared_with_its_account() {
    let emu = emulator(0.0).await;
    put_role(
        &emu,
        json!({"roleArn": DR_ROLE, "trustedAccounts": [CALLER]}),
    )
    .await;
    let source = emu.docdb("us-east-1").await;
    source
        .create_db_cluster()
        .db_cluster_identifier("orders")
        .engine("docdb")
        .storage_encrypted(true)
        .kms_key_id("alias/source")
        .send()
        .await
        .unwrap();
    source
        .create_db_cluster_snapshot()
        .db_cluster_identifier("orders")
        .db_cluster_snapshot_identifier("nightly")
        .send()
        .await
        .unwrap();
    let out = sts(&emu, KEY)
        .await
        .assume_role()
        .role_arn(DR_ROLE)
        .role_session_name("dr-copy")
        .send()
        .await
        .unwrap();
    let dr = aws_sdk_docdb::Client::new(
        &config_with(
            &emu.url,
            "us-east-1",
            temporary(&out),
            RetryConfig::disabled(),
        )
        .await,
    );
    let arn = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:nightly";
    let copy = |kms: Option<&str>| {
        dr.copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(arn)
            .target_db_cluster_snapshot_identifier("nightly-dr")
            .set_kms_key_id(kms.map(str::to_string))
            .send()
    };
    assert_eq!(
        code(copy(Some("alias/dr")).await),
        "DBClusterSnapshotNotFoundFault"
    );
    source
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("nightly")
        .attribute_name("restore")
        .values_to_add(OTHER_ACCOUNT)
        .send()
        .await
        .unwrap();
    assert_eq!(code(copy(None).await), "KMSKeyNotAccessibleFault");
    let copied = copy(Some("alias/dr")).await.unwrap();
    let s = copied.db_cluster_snapshot().unwrap();
    assert_eq!(
        s.db_cluster_snapshot_arn(),
        Some("arn:aws:rds:us-east-1:210987654321:cluster-snapshot:nightly-dr")
    );
    assert_eq!(s.kms_key_id(), Some("alias/dr"));
    // The long-term key of the DR account sees it as its own.
    let dr_user = aws_sdk_docdb::Client::new(&emu.config("us-east-1", OTHER_KEY).await);
    let mine = dr_user
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("nightly-dr")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.db_cluster_snapshots().len(), 1);
}
