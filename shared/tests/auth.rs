//! Auth and tenancy at the edge: every way a token can be wrong is a 401, a token for another
//! org or user than the path is a 403, and both come in the error envelope.

mod common;

use common::{app, app_with, jwt_config, request, send, token, Client, SECRET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use shared::config::JwtConfig;
use shared::routes::Endpoint;

const LIST: &str = "/jarvispy/acme/ann/api/v1/workspaces/list";

fn claims(org: &str, user: &str, exp_offset: i64) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({"sub": "1", "username": user, "organization": org, "role": "user", "jti": "j", "exp": now + exp_offset})
}

fn hs256(secret: &str, claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn key(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn list_with(app: &shared::App, auth: Option<&str>) -> common::Answer {
    send(app, Endpoint::ListWorkspaces, request("GET", LIST, auth, None)).await
}

#[tokio::test]
async fn a_valid_token_for_the_path_passes() {
    let app = app();
    let a = list_with(&app, Some(&format!("Bearer {}", token("acme", "ann")))).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn token_problems_are_401() {
    let app = app();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims("acme", "ann", 600)));
    let good = token("acme", "ann");
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = b64(&claims("acme", "admin", 600));
        parts.join(".")
    };
    let no_org =
        hs256(SECRET, &json!({"username": "ann", "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 600}));
    let no_exp = hs256(SECRET, &json!({"username": "ann", "organization": "acme"}));
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "Missing Authorization"),
        (Some("Basic dXNlcjpwYXNz".into()), "Bearer"),
        (Some("Bearer ".into()), "Bearer"),
        (Some("Bearer not.a.jwt".into()), "Malformed"),
        (Some(format!("Bearer {}", hs256(SECRET, &claims("acme", "ann", -3600)))), "expired"),
        (Some(format!("Bearer {}", hs256("another-secret", &claims("acme", "ann", 600)))), "signature"),
        (Some(format!("Bearer {tampered}")), "signature"),
        (Some(format!("Bearer {alg_none}")), "token"),
        (Some(format!("Bearer {no_org}")), "organization"),
        (Some(format!("Bearer {no_exp}")), "exp"),
    ];
    for (auth, needle) in cases {
        list_with(&app, auth.as_deref()).await.assert_error(401, needle);
    }
}

#[tokio::test]
async fn a_token_for_another_org_or_user_than_the_path_is_403() {
    let app = app();
    for (org, user) in [("other", "ann"), ("acme", "bob")] {
        let a = list_with(&app, Some(&format!("Bearer {}", token(org, user)))).await;
        a.assert_error(403, "do not match");
    }
}

#[tokio::test]
async fn rs256_and_es256_public_keys_accept_exactly_their_algorithm() {
    for (private, public, alg) in
        [("rsa-private.pem", "rsa-public.pem", Algorithm::RS256), ("ec-private.pem", "ec-public.pem", Algorithm::ES256)]
    {
        let jwt = JwtConfig { public_key_pem: Some(key(public)), ..JwtConfig::default() };
        let app = app_with(jwt, 1_000_000);
        let enc = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(key(private).as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(key(private).as_bytes()).unwrap(),
        };
        let signed = encode(&Header::new(alg), &claims("acme", "ann", 600), &enc).unwrap();
        assert_eq!(list_with(&app, Some(&format!("Bearer {signed}"))).await.status, 200, "{alg:?}");
        // HS256 signed with the public key as the secret: the classic algorithm confusion.
        let confused = hs256(&key(public), &claims("acme", "ann", 600));
        list_with(&app, Some(&format!("Bearer {confused}"))).await.assert_error(401, "not accepted");
        // A secret-signed token when no secret is configured.
        list_with(&app, Some(&format!("Bearer {}", token("acme", "ann")))).await.assert_error(401, "not accepted");
    }
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let jwt = JwtConfig {
        issuer: Some("https://auth.prometheux.ai".into()),
        audience: Some("workspaces".into()),
        ..jwt_config()
    };
    let app = app_with(jwt, 1_000_000);
    let mut c = claims("acme", "ann", 600);
    list_with(&app, Some(&format!("Bearer {}", hs256(SECRET, &c)))).await.assert_error(401, "");
    c["iss"] = json!("https://auth.prometheux.ai");
    c["aud"] = json!("workspaces");
    assert_eq!(list_with(&app, Some(&format!("Bearer {}", hs256(SECRET, &c)))).await.status, 200);
    c["aud"] = json!("billing");
    list_with(&app, Some(&format!("Bearer {}", hs256(SECRET, &c)))).await.assert_error(401, "audience");
    c["aud"] = json!("workspaces");
    c["iss"] = json!("https://evil.example");
    list_with(&app, Some(&format!("Bearer {}", hs256(SECRET, &c)))).await.assert_error(401, "issuer");
}

#[tokio::test]
async fn every_endpoint_requires_auth() {
    let app = app();
    let ann = Client::new(&app, "acme", "ann");
    for (endpoint, method, path) in [
        (Endpoint::SaveWorkspace, "POST", "/workspaces/save"),
        (Endpoint::ListWorkspaces, "GET", "/workspaces/list"),
        (Endpoint::LoadWorkspace, "GET", "/workspaces/ws_1/load"),
    ] {
        let a = send(&app, endpoint, request(method, &format!("{}{path}", ann.base()), None, Some("{}"))).await;
        a.assert_error(401, "Authorization");
    }
}

#[tokio::test]
async fn a_token_is_refused_before_its_nbf_with_the_same_leeway_as_exp() {
    let app = app();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with_nbf = |nbf: Value| {
        let mut c = claims("acme", "ann", 3600);
        c["nbf"] = nbf;
        format!("Bearer {}", hs256(SECRET, &c))
    };
    list_with(&app, Some(&with_nbf(json!(now + 3600)))).await.assert_error(401, "not valid yet");
    list_with(&app, Some(&with_nbf(json!("tomorrow")))).await.assert_error(401, "'nbf'");
    // Past, and a few seconds ahead (a clock slightly behind the issuer's): both accepted.
    for nbf in [now - 3600, now + 10] {
        let a = list_with(&app, Some(&with_nbf(json!(nbf)))).await;
        assert_eq!(a.status, 200, "nbf {} s from now: {}", nbf - now, a.body);
    }
}
