use serde_json::json;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_marks_contacts_and_unlisting_restores_them() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let a = app.campaign(&key, "a").await;
    let b = app.campaign(&key, "b").await;
    // Listed before the upload: the new contact arrives marked.
    let (status, entry) = app
        .post(
            "/api/v1/dnc",
            &key,
            &json!({ "phone": "(415) 555-0199", "reason": "asked" }),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["phone"], "+14155550199");
    let (status, again) = app
        .post("/api/v1/dnc", &key, &json!({ "phone": "+14155550199" }))
        .await;
    assert_eq!(status, 200, "listing twice is idempotent: {again}");
    assert_eq!(again["reason"], "asked");
    let csv = "phone\n+14155550199\n+14155550100\n";
    let (_, report) = app
        .upload(
            &format!("/api/v1/campaigns/{a}/contacts"),
            &key,
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(report["do_not_call"], 1, "{report}");
    // Listed after the upload: every campaign's contact with it is marked.
    app.upload(
        &format!("/api/v1/campaigns/{b}/contacts"),
        &key,
        "text/csv",
        csv,
    )
    .await;
    app.post("/api/v1/dnc", &key, &json!({ "phone": "+14155550100" }))
        .await;
    for c in [&a, &b] {
        let (_, page) = app
            .get(&format!("/api/v1/campaigns/{c}/contacts?status=dnc"), &key)
            .await;
        assert_eq!(page["items"].as_array().expect("items").len(), 2, "{page}");
    }
    let (_, list) = app.get("/api/v1/dnc?limit=1", &key).await;
    assert_eq!(list["items"][0]["phone"], "+14155550100");
    let cursor = list["next_cursor"].as_str().expect("cursor").to_string();
    let (_, next) = app
        .get(
            &format!("/api/v1/dnc?limit=1&cursor={}", cursor.replace('+', "%2B")),
            &key,
        )
        .await;
    assert_eq!(next["items"][0]["phone"], "+14155550199");

    let (status, _) = app.delete("/api/v1/dnc/%2B14155550100", &key).await;
    assert_eq!(status, 204);
    let (status, _) = app.delete("/api/v1/dnc/%2B14155550100", &key).await;
    assert_eq!(status, 404);
    let (status, _) = app.delete("/api/v1/dnc/garbage", &key).await;
    assert_eq!(status, 422);
    let (_, page) = app
        .get(
            &format!("/api/v1/campaigns/{a}/contacts?status=pending"),
            &key,
        )
        .await;
    assert_eq!(page["items"][0]["phone"], "+14155550100", "dialable again");
    let (status, _) = app
        .post("/api/v1/dnc", &key, &json!({ "phone": "12" }))
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}
