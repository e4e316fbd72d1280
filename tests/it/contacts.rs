use serde_json::{Value, json};

use crate::support::TestApp;

async fn setup() -> (TestApp, String, String) {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let id = app.campaign(&key, "c").await;
    (app, key, id)
}

async fn all_contacts(app: &TestApp, key: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .get(
                &format!("/api/v1/campaigns/{id}/contacts?limit=1000&cursor={cursor}"),
                key,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_edge_cases() {
    let (app, key, id) = setup().await;
    let path = format!("/api/v1/campaigns/{id}/contacts");
    // BOM, CRLF, a quoted comma, a quoted newline, empty lines, a bad row,
    // a short row, extra columns to metadata, a given zone and a derived one.
    let csv = "\u{feff}Phone,Name,TimeZone,plan\r\n\
               +44 20 7946 0958,Ann,,\"gold, yearly\"\r\n\
               \r\n\
               (415) 555-0123,\"Bob \"\"B\"\" Jr\",America/Los_Angeles,basic\r\n\
               not-a-number,Carl,,x\r\n\
               +33 1 42 68 53 00,\"Dee\nSecond line\",,silver\r\n\
               +14155550124,Eve\r\n\
               \r\n";
    let (status, report) = app
        .upload(&path, &key, "text/csv; charset=utf-8", csv)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 3, "{report}");
    assert_eq!(report["invalid"], 2, "{report}");
    assert_eq!(report["duplicates"], 0);
    let errors = report["errors"].as_array().expect("errors");
    assert_eq!(errors[0]["line"], 5, "{report}");
    assert_eq!(errors[0]["field"], "phone");
    assert_eq!(
        errors[1]["line"], 8,
        "line counts the quoted newline: {report}"
    );

    let contacts = all_contacts(&app, &key, &id).await;
    assert_eq!(contacts.len(), 3);
    assert_eq!(contacts[0]["phone"], "+442079460958");
    assert_eq!(contacts[0]["timezone"], "Europe/London", "derived from +44");
    assert_eq!(contacts[0]["metadata"], json!({ "plan": "gold, yearly" }));
    assert_eq!(contacts[1]["phone"], "+14155550123");
    assert_eq!(contacts[1]["name"], "Bob \"B\" Jr");
    assert_eq!(contacts[1]["timezone"], "America/Los_Angeles");
    assert_eq!(contacts[2]["name"], "Dee\nSecond line");
    assert_eq!(contacts[2]["timezone"], "Europe/Paris");
    assert!(
        contacts
            .iter()
            .all(|c| c["status"] == "pending" && c["attempts"] == 0)
    );

    // Uploading again skips every number as a duplicate.
    let (status, report) = app.upload(&path, &key, "text/csv", csv).await;
    assert_eq!(status, 200);
    assert_eq!(
        (report["accepted"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_fatal_problems_store_nothing() {
    let (app, key, id) = setup().await;
    let path = format!("/api/v1/campaigns/{id}/contacts");
    let long = "x".repeat(2000);
    for (csv, status, needle) in [
        ("name,number\nAnn,+14155550123\n", 422, "phone"),
        ("", 422, ""),
        ("phone,phone\n+14155550123,+14155550124\n", 422, "phone"),
        (&*format!("phone,name\n+14155550123,{long}\n"), 422, "1024"),
        ("phone,name\n+14155550123,\"unterminated\n", 422, ""),
    ] {
        let (got, problem) = app.upload(&path, &key, "text/csv", csv.to_string()).await;
        assert_eq!(got, status, "{csv:.40?}: {problem}");
        assert!(
            problem["detail"].as_str().expect("detail").contains(needle),
            "{problem}"
        );
    }
    let invalid_utf8: Vec<u8> = b"phone,name\n+14155550123,\xff\xfe\n".to_vec();
    let (got, _) = app.upload(&path, &key, "text/csv", invalid_utf8).await;
    assert_eq!(got, 422);
    assert!(
        all_contacts(&app, &key, &id).await.is_empty(),
        "a rejected upload stores nothing"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_limits() {
    let app = TestApp::start_with(|c| {
        c.contacts.max_rows = 3;
        c.contacts.max_upload_bytes = 2048;
    })
    .await;
    let (_, key) = app.tenant("acme").await;
    let id = app.campaign(&key, "c").await;
    let path = format!("/api/v1/campaigns/{id}/contacts");
    let rows = "phone\n+14155550121\n+14155550122\n+14155550123\n+14155550124\n";
    let (status, problem) = app.upload(&path, &key, "text/csv", rows).await;
    assert_eq!(status, 413, "{problem}");
    let big = format!("phone,note\n+14155550121,{}\n", "y".repeat(900)).repeat(3);
    let (status, problem) = app.upload(&path, &key, "text/csv", big.clone()).await;
    assert_eq!(status, 413, "{problem}");
    // The same without Content-Length (chunked) is cut off while streaming.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, problem) = app.upload(&path, &key, "text/csv", body).await;
    assert_eq!(status, 413, "{problem}");
    let (status, _) = app.upload(&path, &key, "application/xml", "<a/>").await;
    assert_eq!(status, 415);
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{id}/contacts"), &key)
        .await;
    assert_eq!(page["items"].as_array().expect("items").len(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_rows() {
    let (app, key, id) = setup().await;
    let mut csv = String::from("phone,name,account\n");
    for i in 0..100_000u32 {
        csv.push_str(&format!(
            "+1212{:03}{:04},Person {i},A{i}\n",
            200 + i / 10_000,
            i % 10_000
        ));
    }
    let (status, report) = app
        .upload(
            &format!("/api/v1/campaigns/{id}/contacts"),
            &key,
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 100_000, "{report}");
    assert_eq!(report["invalid"], 0);
    let contacts = all_contacts(&app, &key, &id).await;
    assert_eq!(contacts.len(), 100_000);
    assert_eq!(contacts[99_999]["metadata"]["account"], "A99999");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_upload_and_status_filter() {
    let (app, key, id) = setup().await;
    let path = format!("/api/v1/campaigns/{id}/contacts");
    let body = json!([
        { "phone": "+14155550123", "name": "Ann", "metadata": { "tier": 2 } },
        { "phone": "+14155550124", "timezone": "america/chicago" },
        { "phone": "+14155550123" },
        { "phone": "nope" },
        { "phone": "+14155550125", "colour": "red" },
        "not an object"
    ]);
    let (status, report) = app.post(&path, &key, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["invalid"], 3);
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, vec![4, 5, 6]);
    let contacts = all_contacts(&app, &key, &id).await;
    assert_eq!(contacts[0]["metadata"], json!({ "tier": 2 }));
    assert_eq!(
        contacts[0]["timezone"],
        Value::Null,
        "US spans several zones"
    );
    assert_eq!(contacts[1]["timezone"], "America/Chicago");
    let (status, _) = app.post(&path, &key, &json!({ "phone": "+1" })).await;
    assert_eq!(status, 422, "top level must be an array");

    // DNC marks; the status filter finds it.
    app.post("/api/v1/dnc", &key, &json!({ "phone": "+14155550124" }))
        .await;
    let (_, dnc) = app.get(&format!("{path}?status=dnc"), &key).await;
    assert_eq!(dnc["items"].as_array().expect("items").len(), 1);
    assert_eq!(dnc["items"][0]["phone"], "+14155550124");
    let (_, pending) = app.get(&format!("{path}?status=pending"), &key).await;
    assert_eq!(pending["items"].as_array().expect("items").len(), 1);
    let (status, _) = app.get(&format!("{path}?status=weird"), &key).await;
    assert_eq!(status, 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_of_an_ended_campaign_are_refused() {
    let (app, key, id) = setup().await;
    app.post_empty(&format!("/api/v1/campaigns/{id}/stop"), &key)
        .await;
    let (status, _) = app
        .upload(
            &format!("/api/v1/campaigns/{id}/contacts"),
            &key,
            "text/csv",
            "phone\n+14155550123\n",
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .upload(
            &format!("/api/v1/campaigns/{}/contacts", uuid::Uuid::now_v7()),
            &key,
            "text/csv",
            "phone\n+14155550123\n",
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// One raw HTTP upload that sends its headers, then one byte a second,
/// until the server answers; returns what the server sent.
pub(crate) async fn trickle_upload(
    addr: std::net::SocketAddr,
    path: String,
    key: String,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: talky\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: text/csv\r\nContent-Length: 200\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let mut reply = Vec::new();
    let body = b"phone\n+14155550123\n";
    for byte in body.iter().cycle().take(200) {
        tokio::select! {
            n = s.read_buf(&mut reply) => {
                if n.unwrap_or(0) == 0 { break; }
                // The answer has begun: read the rest of it.
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    s.read_to_end(&mut reply),
                ).await;
                break;
            }
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                if s.write_all(&[*byte]).await.is_err() { break; }
            }
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// 16 uploads of tenant A that trickle one byte a second hold no pooled
/// connection (the body is read before any is taken), do not make tenant
/// B's requests wait, and are cut at the body read deadline with a 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_hold_nothing_and_are_cut() {
    let app = TestApp::start_with(|c| {
        c.database.pool_size = 4;
        c.server.body_read_timeout_ms = 5_000;
    })
    .await;
    let (_, a) = app.tenant("a").await;
    let (_, b) = app.tenant("b").await;
    let campaign = app.campaign(&a, "a's").await;
    app.campaign(&b, "b's").await;
    let addr = app.server().addr;
    let uploads: Vec<_> = (0..16)
        .map(|_| {
            tokio::spawn(trickle_upload(
                addr,
                format!("/api/v1/campaigns/{campaign}/contacts"),
                a.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    for _ in 0..3 {
        let state = app.pool().state();
        assert_eq!(
            state.connections - state.idle_connections,
            0,
            "a stalled upload holds a connection: {state:?}"
        );
        let t = std::time::Instant::now();
        let (status, page) = app.get("/api/v1/campaigns", &b).await;
        let took = t.elapsed();
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["items"].as_array().expect("items").len(), 1);
        assert!(
            took < std::time::Duration::from_secs(1),
            "B waited {took:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    for upload in uploads {
        let reply = upload.await.expect("task");
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        assert!(reply.contains("application/problem+json"), "{reply}");
        assert!(
            reply.contains("urn:talky:problem:request-timeout"),
            "{reply}"
        );
    }
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{campaign}/contacts"), &a)
        .await;
    assert_eq!(page["items"].as_array().expect("items").len(), 0);
    app.stop().await;
}

/// A NUL character (which PostgreSQL text cannot hold) in a contact field
/// makes that row invalid, naming the field; in a header it refuses the
/// upload (422). Never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_in_uploads_are_refused_by_field() {
    let (app, key, id) = setup().await;
    let path = format!("/api/v1/campaigns/{id}/contacts");
    let csv = "phone,name,notes\n+14155550121,A\0nn,x\n+14155550122,Bob,n\0\n+14155550123,Cy,ok\n";
    let (status, report) = app.upload(&path, &key, "text/csv", csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["accepted"].as_u64(), report["invalid"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(report["errors"][0]["field"], "name", "{report}");
    assert_eq!(report["errors"][1]["field"], "metadata.notes", "{report}");
    let (status, problem) = app
        .upload(&path, &key, "text/csv", "phone,no\0te\n+14155550124,x\n")
        .await;
    assert_eq!(status, 422, "{problem}");
    let body = json!([
        { "phone": "+14155550125", "metadata": { "k": "v\u{0}" } },
        { "phone": "+14155550126", "metadata": { "k\u{0}": "v" } },
        { "phone": "+14155550127", "timezone": "UTC\u{0}" },
        { "phone": "+14155550128", "metadata": { "tags": ["a", "b"] } },
    ]);
    let (status, report) = app
        .upload(&path, &key, "application/json", body.to_string())
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["accepted"].as_u64(), report["invalid"].as_u64()),
        (Some(1), Some(3))
    );
    let fields: Vec<&str> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["metadata.k", "metadata.k\\u0000", "timezone"]);
    assert_eq!(all_contacts(&app, &key, &id).await.len(), 2);
    app.stop().await;
}
