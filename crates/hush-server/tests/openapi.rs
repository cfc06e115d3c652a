//! `/openapi.json` documents exactly the routes the server has.
//!
//! `ROUTES` lists every route of `src/app.rs`. The test checks that list three
//! ways: against the route table's source (so a new route fails here until it
//! is listed), against the running server (each listed route answers, with
//! 401 without a token exactly when it is authenticated), and against the
//! served document (every route documented, nothing documented that is not a
//! route). Schemathesis in `.ci/run` checks the responses themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use serde_json::Value;

/// Whether a route takes a bearer token (its handler extracts `AuthDevice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Bearer,
    None,
}

/// Whether a route reads a JSON body (through `extract::Body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Json,
    Other,
}

/// Every route in `src/app.rs`: method, path (axum syntax), auth, body.
const ROUTES: &[(&str, &str, Auth, Body)] = &[
    ("post", "/v1/accounts", Auth::None, Body::Json),
    ("get", "/v1/accounts/{username}", Auth::Bearer, Body::Other),
    (
        "post",
        "/v1/accounts/{username}/devices",
        Auth::None,
        Body::Json,
    ),
    (
        "delete",
        "/v1/accounts/{username}/devices/{device_id}",
        Auth::None,
        Body::Json,
    ),
    (
        "post",
        "/v1/accounts/{username}/key-packages/claim",
        Auth::Bearer,
        Body::Other,
    ),
    (
        "get",
        "/v1/accounts/{username}/profile",
        Auth::Bearer,
        Body::Other,
    ),
    ("post", "/v1/token/rotate", Auth::Bearer, Body::Other),
    ("put", "/v1/profile", Auth::Bearer, Body::Other),
    ("put", "/v1/key-packages", Auth::Bearer, Body::Json),
    ("get", "/v1/key-packages/count", Auth::Bearer, Body::Other),
    ("post", "/v1/messages", Auth::Bearer, Body::Json),
    ("post", "/v1/reports", Auth::Bearer, Body::Json),
    ("get", "/v1/links/{link_id}", Auth::Bearer, Body::Other),
    ("put", "/v1/links/{link_id}", Auth::Bearer, Body::Json),
    (
        "post",
        "/v1/links/{link_id}/requests",
        Auth::Bearer,
        Body::Json,
    ),
    (
        "post",
        "/v1/links/{link_id}/manage",
        Auth::Bearer,
        Body::Json,
    ),
    (
        "get",
        "/v1/channels/{channel_id}",
        Auth::Bearer,
        Body::Other,
    ),
    ("put", "/v1/channels/{channel_id}", Auth::Bearer, Body::Json),
    (
        "get",
        "/v1/channels/{channel_id}/posts",
        Auth::Bearer,
        Body::Other,
    ),
    (
        "post",
        "/v1/channels/{channel_id}/posts",
        Auth::Bearer,
        Body::Json,
    ),
    ("get", "/v1/ws", Auth::Bearer, Body::Other),
    ("get", "/v1/kt/config", Auth::None, Body::Other),
    ("get", "/v1/kt/roots", Auth::None, Body::Other),
    ("post", "/v1/kt/lookup", Auth::Bearer, Body::Json),
    ("get", "/v1/kt/lookup/{username}", Auth::Bearer, Body::Other),
    (
        "get",
        "/v1/kt/history/{username}",
        Auth::Bearer,
        Body::Other,
    ),
    ("get", "/v1/kt/audit", Auth::None, Body::Other),
    ("post", "/v1/attachments", Auth::Bearer, Body::Json),
    ("get", "/v1/attachments/{id}", Auth::Bearer, Body::Other),
    ("patch", "/v1/attachments/{id}", Auth::Bearer, Body::Other),
    ("delete", "/v1/attachments/{id}", Auth::Bearer, Body::Other),
    (
        "get",
        "/v1/attachments/{id}/status",
        Auth::Bearer,
        Body::Other,
    ),
    ("put", "/v1/backup", Auth::Bearer, Body::Other),
    ("get", "/v1/backup", Auth::Bearer, Body::Other),
    ("delete", "/v1/backup", Auth::Bearer, Body::Other),
    ("get", "/v1/backups/{locator}", Auth::None, Body::Other),
    ("get", "/healthz", Auth::None, Body::Other),
    ("get", "/metrics", Auth::None, Body::Other),
    ("get", "/openapi.json", Auth::None, Body::Other),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn listed() -> BTreeSet<(String, String)> {
    let set: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p, _, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(set.len(), ROUTES.len(), "a route is listed twice");
    set
}

/// The `(method, path)` pairs of every `.route("PATH", get(..).post(..))` in
/// the route table's source.
fn routes_in_source(src: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let open = rest.find('"').expect("a path literal");
        let close = open + 1 + rest[open + 1..].find('"').expect("the path's end");
        let path = &rest[open + 1..close];
        // The method router: identifiers called at the top level of the
        // `.route(...)` arguments, up to its closing parenthesis.
        let mut depth = 1usize;
        let mut ident = String::new();
        let mut methods = Vec::new();
        for c in rest[close + 1..].chars() {
            match c {
                '(' => {
                    if depth == 1 && !ident.is_empty() {
                        methods.push(ident.clone());
                    }
                    depth += 1;
                    ident.clear();
                }
                ')' => {
                    depth -= 1;
                    ident.clear();
                    if depth == 0 {
                        break;
                    }
                }
                c if c.is_alphanumeric() || c == '_' || c == ':' => ident.push(c),
                _ => ident.clear(),
            }
        }
        assert!(!methods.is_empty(), "no method router for {path}");
        for m in methods {
            assert!(
                METHODS.contains(&m.as_str()),
                "unexpected method router `{m}` for {path}: teach this test about it"
            );
            out.insert((m, path.to_owned()));
        }
    }
    out
}

#[test]
fn the_list_matches_the_route_table() {
    let source = routes_in_source(include_str!("../src/app.rs"));
    let listed = listed();
    let unlisted: Vec<_> = source.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&source).collect();
    assert!(
        unlisted.is_empty(),
        "routes in app.rs missing from ROUTES here (and so probably from openapi.json): {unlisted:?}"
    );
    assert!(
        stale.is_empty(),
        "ROUTES lists routes app.rs lacks: {stale:?}"
    );
}

/// The value at a local `$ref` such as `#/components/schemas/Error`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("non-local $ref {reference}"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r),
        None => v,
    }
}

fn check_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    resolve(doc, v.as_str().expect("a $ref is a string"));
                } else {
                    check_refs(doc, v);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
        _ => {}
    }
}

#[tokio::test]
async fn the_served_document_covers_every_route() {
    let s = TestServer::start().await;
    let resp = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value =
        serde_json::from_str(&resp.text().await.unwrap()).expect("/openapi.json is valid JSON");

    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3."), "OpenAPI 3.x, not {version}");
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("a `paths` object");
    check_refs(&doc, &doc);
    let bearer = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");

    // Documented operations, both ways against the list.
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let listed = listed();
    let undocumented: Vec<_> = listed.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&listed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "openapi.json documents routes the server lacks: {phantom:?}"
    );

    // Every error code the document names is one the server has.
    for code in doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the error codes")
    {
        let parsed: hush_wire::ErrorCode = serde_json::from_value(code.clone())
            .unwrap_or_else(|e| panic!("unknown error code {code}: {e}"));
        assert_eq!(serde_json::to_value(parsed).unwrap(), *code);
    }

    for (method, path, auth, body) in ROUTES {
        let op = &paths[*path][*method];
        let name = format!("{} {path}", method.to_uppercase());
        assert!(op["operationId"].is_string(), "{name}: operationId");
        let responses = op["responses"].as_object().expect("responses");
        let has = |status: &str| responses.contains_key(status);

        // Security exactly on the routes that take a token.
        let secured = op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearerAuth").is_some()));
        assert_eq!(secured, *auth == Auth::Bearer, "{name}: security");
        if *auth == Auth::Bearer {
            assert!(has("401") && has("403"), "{name}: 401 and 403");
        }
        // The per-IP limiter answers anything.
        assert!(has("429"), "{name}: 429");
        if *body == Body::Json {
            assert!(has("400") && has("413"), "{name}: 400 and 413");
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{name}: a JSON request body");
            assert_eq!(op["requestBody"]["required"], true, "{name}");
        }
        // Path parameters are declared.
        for segment in path.split('/') {
            if let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let declared = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        let p = deref(&doc, p);
                        p["in"] == "path" && p["name"] == param && p["required"] == true
                    })
                });
                assert!(declared, "{name}: path parameter {param}");
            }
        }
        // Refusals carry the Error body.
        for (status, response) in responses {
            let code: u16 = status.parse().expect("numeric statuses");
            if code >= 400 {
                let schema =
                    &deref(&doc, response)["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/Error",
                    "{name}: {status} carries the Error body"
                );
            }
        }
    }
    s.stop().await;
}

/// Each listed route exists on the server (no fallback 404 or 405), and asks
/// for a token exactly when it is listed as authenticated.
#[tokio::test]
async fn every_listed_route_is_served() {
    let s = TestServer::start().await;
    for (method, path, auth, _) in ROUTES {
        let url = s.url(
            &path
                .replace("{username}", "nobody")
                .replace("{device_id}", "1")
                .replace("{group_id}", "Zw")
                .replace("{link_id}", &"0".repeat(64))
                .replace("{channel_id}", &"0".repeat(64))
                .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = s.http.request(method.clone(), &url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !(status == 404 && body.contains("no such endpoint")),
            "{method} {path} is not routed"
        );
        assert_eq!(
            status == 401,
            *auth == Auth::Bearer,
            "{method} {path} without a token: {status} {body}"
        );
    }
    s.stop().await;
}
