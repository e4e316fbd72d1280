//! [`TwilioClient`] against a tiny stand-in for Twilio's REST API on
//! 127.0.0.1:0: what is sent (path, auth, form fields) and how each answer
//! maps to a port result.

use super::*;
use crate::providers::rest_stub::{Canned, canned, closed_port, script, server};
use crate::providers::twilio::twiml::parse_stream;
use std::time::Instant;

const ACCOUNT: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "test-auth-token";
const SID: &str = "CA0123456789abcdef0123456789abcdef";

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("twilio", 100, Duration::from_secs(30)))
}

fn config(base: &str) -> TwilioConfig {
    TwilioConfig {
        api_base_url: base.to_owned(),
        account_sid: ACCOUNT.to_owned(),
        auth_token: Secret::new(TOKEN),
        public_url: "https://dialer.example.com".to_owned(),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(500),
        retry: RetryPolicy::new(0, Duration::from_millis(10), Duration::from_secs(2)),
        callback_key: CallbackKey::new(b"test-callback-key"),
        ..TwilioConfig::default()
    }
}

fn client(cfg: TwilioConfig) -> TwilioClient {
    TwilioClient::new(cfg, breaker()).expect("client")
}

fn place() -> PlaceCall {
    PlaceCall {
        call: CallId::new(),
        to: "+447700900000".into(),
        from: "447700900001".into(),
        ringing_timeout: Duration::from_secs(30),
        max_duration: Duration::from_secs(900),
        machine_detection: true,
        media_token: "tok".into(),
    }
}

fn created(sid: &str) -> String {
    format!(
        r#"{{"sid":"{sid}","account_sid":"{ACCOUNT}","to":"+447700900000","from":"+447700900001",
 "status":"queued","direction":"outbound-api","api_version":"2010-04-01",
 "date_created":null,"start_time":null,"parent_call_sid":null,
 "uri":"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json"}}"#
    )
}

fn error(code: u32, status: u16, message: &str) -> String {
    format!(
        r#"{{"code":{code},"message":"{message}","more_info":"https://www.twilio.com/docs/errors/{code}","status":{status}}}"#
    )
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{pass}")))
}

#[tokio::test]
async fn place_call_posts_the_form_with_basic_auth_and_returns_the_sid() {
    let (base, seen) = server(Arc::new(|_| canned(201, &created(SID)))).await;
    let c = client(config(&base));
    let req = place();
    let call = req.call.to_string();
    let id = c.place_call(req).await.expect("placed");
    assert_eq!(id, ProviderCallId(SID.into()));

    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"));
    assert_eq!(s.auth.as_deref(), Some(basic(ACCOUNT, TOKEN).as_str()));
    assert_eq!(
        s.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(s.one("To"), "+447700900000");
    assert_eq!(s.one("From"), "+447700900001", "the + is added");
    let key = CallbackKey::new(b"test-callback-key").for_call(&format!("twilio/{call}"));
    let status_url = format!("https://dialer.example.com/twilio/status/{call}/{key}");
    assert_eq!(s.one("StatusCallback"), status_url);
    assert_eq!(s.one("StatusCallbackMethod"), "POST");
    assert_eq!(
        s.all("StatusCallbackEvent"),
        vec!["initiated", "ringing", "answered", "completed"]
    );
    assert_eq!(s.one("Timeout"), "30");
    assert_eq!(s.one("TimeLimit"), "900");
    assert_eq!(s.one("MachineDetection"), "DetectMessageEnd");
    assert_eq!(s.one("AsyncAmd"), "true");
    assert_eq!(s.one("AsyncAmdStatusCallback"), status_url);
    assert_eq!(s.one("AsyncAmdStatusCallbackMethod"), "POST");
    assert!(s.all("MachineDetectionTimeout").is_empty());
    assert!(s.all("Url").is_empty(), "inline TwiML only");
    let twiml = parse_stream(s.one("Twiml")).expect("twiml");
    assert_eq!(
        twiml.url,
        format!("wss://dialer.example.com/twilio/media/{call}/tok")
    );
    assert_eq!(twiml.parameters, vec![("call_id".to_owned(), call.clone())]);
}

#[tokio::test]
async fn api_keys_authenticate_and_detection_follows_the_call_and_the_config() {
    let (base, seen) = server(Arc::new(|_| canned(201, &created(SID)))).await;
    let mut cfg = config(&base);
    cfg.api_key_sid = Some("SK00000000000000000000000000000002".into());
    cfg.api_key_secret = Secret::new("key-secret");
    cfg.machine_detection = TwilioMachineDetection::Enable;
    cfg.machine_detection_timeout_secs = Some(20);
    let c = client(cfg.clone());
    let mut req = place();
    req.ringing_timeout = Duration::from_secs(1);
    req.max_duration = Duration::from_secs(100_000);
    c.place_call(req).await.expect("placed");
    let mut req = place();
    req.machine_detection = false;
    c.place_call(req).await.expect("placed");
    cfg.machine_detection = TwilioMachineDetection::Off;
    client(cfg).place_call(place()).await.expect("placed");

    let seen = seen.lock().expect("log").clone();
    let s = &seen[0];
    assert_eq!(
        s.auth.as_deref(),
        Some(basic("SK00000000000000000000000000000002", "key-secret").as_str())
    );
    assert_eq!(s.path, format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"));
    assert_eq!(s.one("MachineDetection"), "Enable");
    assert_eq!(s.one("MachineDetectionTimeout"), "20");
    assert_eq!(s.one("Timeout"), "5", "clamped to Twilio's range");
    assert_eq!(s.one("TimeLimit"), "14400", "clamped to Twilio's maximum");
    for s in &seen[1..] {
        for f in ["MachineDetection", "AsyncAmd", "AsyncAmdStatusCallback"] {
            assert!(s.all(f).is_empty(), "{f}");
        }
    }
}

#[tokio::test]
async fn create_call_errors_map_to_port_errors() {
    type Check = fn(&PortError) -> bool;
    let cases: Vec<(Canned, Check)> = vec![
        (
            canned(400, &error(21211, 400, "Invalid 'To' Phone Number")),
            |e| matches!(e, PortError::Rejected(m) if m.contains("400") && m.contains("21211") && m.contains("Invalid 'To'")),
        ),
        (
            canned(401, &error(20003, 401, "Authenticate")),
            |e| matches!(e, PortError::Rejected(m) if m.contains("20003")),
        ),
        (
            canned(403, "<html>forbidden</html>"),
            |e| matches!(e, PortError::Rejected(m) if m.contains("403")),
        ),
        (canned(404, &error(20404, 404, "not found")), |e| {
            matches!(e, PortError::Rejected(_))
        }),
        (
            Canned {
                headers: vec![("retry-after", "7".into())],
                ..canned(429, &error(20429, 429, "Too Many Requests"))
            },
            |e| {
                *e == PortError::RateLimited {
                    retry_after: Some(Duration::from_secs(7)),
                }
            },
        ),
        (canned(429, ""), |e| {
            *e == PortError::RateLimited { retry_after: None }
        }),
        (
            canned(500, "oops"),
            |e| matches!(e, PortError::Unavailable(m) if m.contains("500")),
        ),
        (
            canned(503, &error(20503, 503, "Service Unavailable")),
            |e| matches!(e, PortError::Unavailable(_)),
        ),
        // Created, but which call is unreadable: unknown, not failed.
        (canned(201, "not json"), |e| {
            matches!(e, PortError::Unknown(_))
        }),
        (canned(201, r#"{"sid":""}"#), |e| {
            matches!(e, PortError::Unknown(_))
        }),
        (canned(201, r#"{"sid":5}"#), |e| {
            matches!(e, PortError::Unknown(_))
        }),
        (
            Canned {
                delay: Duration::from_secs(3),
                ..canned(201, &created(SID))
            },
            // Sent, then no answer in time: the call may exist.
            |e| matches!(e, PortError::Unknown(_)),
        ),
    ];
    for (answer, check) in cases {
        let (base, seen) = server(script(vec![answer])).await;
        let err = client(config(&base))
            .place_call(place())
            .await
            .expect_err("fails");
        assert!(check(&err), "{err:?}");
        assert_eq!(seen.lock().expect("log").len(), 1);
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_back_off() {
    let mut cfg = config("");
    cfg.retry = RetryPolicy::new(2, Duration::from_millis(10), Duration::from_secs(2));

    // 429 with Retry-After (fractional seconds), then created: the wait is
    // the provider's.
    let (base, seen) = server(script(vec![
        Canned {
            headers: vec![("retry-after", "0.3".into())],
            ..canned(429, &error(20429, 429, "Too Many Requests"))
        },
        canned(201, &created(SID)),
    ]))
    .await;
    cfg.api_base_url = base;
    let started = Instant::now();
    let id = client(cfg.clone())
        .place_call(place())
        .await
        .expect("placed");
    assert_eq!(id.0, SID);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(seen.lock().expect("log").len(), 2);

    // 5xx twice then created; 5xx every time gives up after two retries.
    let (base, seen) = server(script(vec![
        canned(500, ""),
        canned(503, ""),
        canned(201, &created(SID)),
    ]))
    .await;
    cfg.api_base_url = base;
    client(cfg.clone())
        .place_call(place())
        .await
        .expect("placed");
    assert_eq!(seen.lock().expect("log").len(), 3);
    let (base, seen) = server(Arc::new(|_| canned(502, ""))).await;
    cfg.api_base_url = base;
    let err = client(cfg.clone())
        .place_call(place())
        .await
        .expect_err("down");
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    assert_eq!(seen.lock().expect("log").len(), 3);

    // A Retry-After beyond the longest wait ends the retries at once.
    let (base, seen) = server(Arc::new(|_| Canned {
        headers: vec![("retry-after", "60".into())],
        ..canned(429, "")
    }))
    .await;
    cfg.api_base_url = base;
    let err = client(cfg.clone())
        .place_call(place())
        .await
        .expect_err("limited");
    assert_eq!(
        err,
        PortError::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(seen.lock().expect("log").len(), 1);

    // Refusals and unknown outcomes are never retried.
    let (base, seen) = server(Arc::new(|_| canned(400, &error(21211, 400, "bad")))).await;
    cfg.api_base_url = base;
    client(cfg.clone())
        .place_call(place())
        .await
        .expect_err("rejected");
    assert_eq!(seen.lock().expect("log").len(), 1);
    let (base, seen) = server(Arc::new(|_| Canned {
        delay: Duration::from_secs(3),
        ..canned(201, &created(SID))
    }))
    .await;
    cfg.api_base_url = base;
    let err = client(cfg.clone())
        .place_call(place())
        .await
        .expect_err("slow");
    assert!(matches!(err, PortError::Unknown(_)), "{err:?}");
    assert_eq!(
        seen.lock().expect("log").len(),
        1,
        "a second create-call is a second call"
    );
}

#[tokio::test]
async fn no_retry_starts_that_would_outlast_the_place_budget() {
    let mut cfg = config("");
    cfg.retry = RetryPolicy::new(5, Duration::from_millis(10), Duration::from_secs(2));
    // One attempt may take 500 ms (the request time-out): with 400 ms in
    // all there is never room for a retry.
    let (base, seen) = server(Arc::new(|_| canned(500, ""))).await;
    cfg.api_base_url = base;
    cfg.place_budget = Duration::from_millis(400);
    let err = client(cfg.clone())
        .place_call(place())
        .await
        .expect_err("down");
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    assert_eq!(seen.lock().expect("log").len(), 1);
    // Slow failures (300 ms each) in 1 s: a retry fits after the first
    // (300 + 10 + 500 <= 1000), not after the second.
    let (base, seen) = server(Arc::new(|_| Canned {
        delay: Duration::from_millis(300),
        ..canned(503, "")
    }))
    .await;
    cfg.api_base_url = base;
    cfg.place_budget = Duration::from_secs(1);
    let started = Instant::now();
    let err = client(cfg).place_call(place()).await.expect_err("down");
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    assert_eq!(seen.lock().expect("log").len(), 2);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn unreachable_hosts_are_unavailable_and_bad_numbers_rejected() {
    let c = client(config(&format!("http://{}", closed_port())));
    let err = c.place_call(place()).await.expect_err("refused");
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    assert!(
        err.is_retryable(),
        "nothing was sent: another provider may try"
    );

    for (to, from) in [
        ("12", "+447700900001"),
        ("+447700900000", "caller"),
        ("", ""),
    ] {
        let mut bad = place();
        bad.to = to.into();
        bad.from = from.into();
        let err = c.place_call(bad).await.expect_err("bad number");
        assert!(matches!(err, PortError::Rejected(_)), "{err:?}");
    }
    let mut bad = place();
    bad.media_token = String::new();
    let err = c.place_call(bad).await.expect_err("no token");
    assert!(matches!(err, PortError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn an_open_breaker_refuses_without_sending() {
    let (base, seen) = server(Arc::new(|_| canned(500, ""))).await;
    let b = Arc::new(CircuitBreaker::new("twilio", 1, Duration::from_secs(60)));
    let c = TwilioClient::new(config(&base), Arc::clone(&b)).expect("client");
    c.place_call(place()).await.expect_err("500");
    let err = c.place_call(place()).await.expect_err("open");
    assert!(
        matches!(&err, PortError::Unavailable(m) if m.contains("circuit open")),
        "{err:?}"
    );
    assert_eq!(seen.lock().expect("log").len(), 1);
    assert!(Arc::ptr_eq(c.breaker(), &b));
}

#[tokio::test]
async fn hang_up_posts_completed_and_tolerates_a_call_already_gone() {
    let cases: Vec<(Canned, bool)> = vec![
        (canned(200, &created(SID)), true),
        (canned(204, ""), true),
        (canned(404, &error(20404, 404, "not found")), true),
        (
            canned(400, &error(21220, 400, "Call is not in-progress")),
            true,
        ),
        (canned(400, &error(21201, 400, "bad")), false),
        (canned(400, "not json"), false),
        (canned(401, &error(20003, 401, "Authenticate")), false),
        (canned(500, ""), false),
    ];
    for (answer, ok) in cases {
        let status = answer.status;
        let (base, seen) = server(script(vec![answer])).await;
        let res = client(config(&base))
            .hang_up(ProviderCallId(SID.into()))
            .await;
        assert_eq!(res.is_ok(), ok, "{status}: {res:?}");
        let seen = seen.lock().expect("log").clone();
        let s = &seen[0];
        assert_eq!(s.method, "POST");
        assert_eq!(
            s.path,
            format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{SID}.json")
        );
        assert_eq!(s.form, vec![("Status".to_owned(), "completed".to_owned())]);
        assert_eq!(s.auth.as_deref(), Some(basic(ACCOUNT, TOKEN).as_str()));
    }
    // A sid that is not a path segment stays one.
    let (base, seen) = server(Arc::new(|_| canned(204, ""))).await;
    client(config(&base))
        .hang_up(ProviderCallId("CA/../x".into()))
        .await
        .expect("ok");
    let path = seen.lock().expect("log")[0].path.clone();
    assert_eq!(
        path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/CA%2F..%2Fx.json")
    );
}

#[tokio::test]
async fn leg_state_reads_the_call() {
    let resource = |status: &str| {
        format!(
            r#"{{"sid":"{SID}","status":"{status}","to":"+447700900000","direction":"outbound-api"}}"#
        )
    };
    let cases: Vec<(Canned, Option<LegState>)> = vec![
        (
            canned(200, &resource("ringing")),
            Some(LegState::Live { answered: false }),
        ),
        (
            canned(200, &resource("queued")),
            Some(LegState::Live { answered: false }),
        ),
        (
            canned(200, &resource("in-progress")),
            Some(LegState::Live { answered: true }),
        ),
        (
            canned(200, &resource("completed")),
            Some(LegState::Ended("completed".into())),
        ),
        (
            canned(200, &resource("no-answer")),
            Some(LegState::Ended("no-answer".into())),
        ),
        (canned(404, &error(20404, 404, "not found")), None),
    ];
    for (answer, want) in cases {
        let (base, seen) = server(script(vec![answer])).await;
        let got = client(config(&base))
            .leg_state(ProviderCallId(SID.into()))
            .await
            .expect("state");
        assert_eq!(got, want);
        let s = seen.lock().expect("log")[0].clone();
        assert_eq!(
            (s.method.as_str(), s.path.as_str()),
            (
                "GET",
                format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{SID}.json").as_str()
            )
        );
    }
    let (base, _) = server(script(vec![canned(200, "[]")])).await;
    let err = client(config(&base))
        .leg_state(ProviderCallId(SID.into()))
        .await
        .expect_err("nonsense");
    assert!(matches!(err, PortError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn find_call_matches_our_leg_in_the_call_list() {
    let since = Utc::now();
    let at = |secs: i64| (since + chrono::Duration::seconds(secs)).to_rfc2822();
    let call = |sid: &str, to: &str, created: &str, extra: &str| {
        format!(
            r#"{{"sid":"{sid}","to":"{to}","from":"+447700900001","status":"ringing",
             "direction":"outbound-api","date_created":"{created}","start_time":null{extra}}}"#
        )
    };
    let page1 = format!(
        r#"{{"calls":[{},{},{},{}],"page":0,"page_size":100,
         "next_page_uri":"/2010-04-01/Accounts/{ACCOUNT}/Calls.json?To=%2B447700900000&PageSize=100&Page=1&PageToken=PA1"}}"#,
        // An earlier attempt to the same number: too old.
        call("CAold", "+447700900000", &at(-600), ""),
        // A child leg and an inbound call: not ours.
        call(
            "CAchild",
            "+447700900000",
            &at(2),
            r#","parent_call_sid":"CAx""#
        ),
        call("CAin", "+447700900000", &at(1), r#","direction":"inbound""#)
            .replace(r#""direction":"outbound-api","#, ""),
        // A later call to the same number.
        call("CAlater", "+447700900000", &at(8), ""),
    );
    let page2 = format!(
        r#"{{"calls":[{},{},{}],"next_page_uri":null}}"#,
        call("CAours", "+447700900000", &at(-2), ""),
        call("CAundated", "+447700900000", "", ""),
        call("CAelse", "+447700900009", &at(0), ""),
    );
    let (base, seen) = server(script(vec![canned(200, &page1), canned(200, &page2)])).await;
    let found = client(config(&base))
        .find_call(CallId::new(), "447700900000", since)
        .await
        .expect("found");
    assert_eq!(found, Some(ProviderCallId("CAours".into())));
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
    );
    assert_eq!(seen[0].query, "To=%2B447700900000&PageSize=100");
    assert_eq!(
        seen[1].query,
        "To=%2B447700900000&PageSize=100&Page=1&PageToken=PA1"
    );

    // Nothing recent: none. A next page elsewhere is not followed.
    let page = format!(
        r#"{{"calls":[{}],"next_page_uri":"https://evil.example/2010-04-01/x"}}"#,
        call("CAold", "+447700900000", &at(-600), "")
    );
    let (base, seen) = server(script(vec![canned(200, &page)])).await;
    let found = client(config(&base))
        .find_call(CallId::new(), "+447700900000", since)
        .await
        .expect("none");
    assert_eq!(found, None);
    assert_eq!(seen.lock().expect("log").len(), 1);

    // Errors are errors (the dialer asks again later), never "no leg".
    for (answer, check) in [
        (
            canned(500, ""),
            (|e: &PortError| matches!(e, PortError::Unavailable(_))) as fn(&PortError) -> bool,
        ),
        (canned(200, "{"), |e| matches!(e, PortError::Protocol(_))),
        (canned(404, ""), |e| matches!(e, PortError::Rejected(_))),
    ] {
        let (base, _) = server(script(vec![answer])).await;
        let err = client(config(&base))
            .find_call(CallId::new(), "+447700900000", since)
            .await
            .expect_err("error");
        assert!(check(&err), "{err:?}");
    }
}

#[test]
fn config_errors_and_redaction() {
    let ok = config("http://127.0.0.1:1");
    TwilioClient::new(ok.clone(), breaker()).expect("valid");
    fn no_key(what: &'static str) -> impl Fn(Result<TwilioClient, BuildError>) -> bool {
        move |r| matches!(r, Err(BuildError::NoKey { what: w, .. }) if w.starts_with(what))
    }
    let mut c = ok.clone();
    c.account_sid = " ".into();
    assert!(no_key("account_sid")(TwilioClient::new(c, breaker())));
    let mut c = ok.clone();
    c.auth_token = Secret::default();
    assert!(no_key("auth_token")(TwilioClient::new(c, breaker())));
    let mut c = ok.clone();
    c.api_key_sid = Some("SK1".into());
    assert!(no_key("api_key_secret")(TwilioClient::new(c, breaker())));
    let mut c = ok.clone();
    c.api_base_url = "ftp://x".into();
    assert!(matches!(
        TwilioClient::new(c, breaker()),
        Err(BuildError::BadSetting {
            setting: "api_base_url",
            ..
        })
    ));
    let mut c = ok.clone();
    c.public_url = "dialer.example.com".into();
    assert!(matches!(
        TwilioClient::new(c, breaker()),
        Err(BuildError::BadSetting {
            setting: "public_url",
            ..
        })
    ));
    let mut c = ok.clone();
    c.api_key_sid = Some("SK1".into());
    c.api_key_secret = Secret::new("very-secret-key");
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains(TOKEN) && !dbg.contains("very-secret-key"),
        "{dbg}"
    );
    let client = TwilioClient::new(c, breaker()).expect("client");
    let dbg = format!("{client:?}");
    assert!(
        !dbg.contains(TOKEN) && !dbg.contains("very-secret-key"),
        "{dbg}"
    );
    assert!(
        !dbg.contains(&BASE64.encode("SK1:very-secret-key")),
        "{dbg}"
    );
}

#[test]
fn time_budgets_end_before_the_dialer_gives_up() {
    use talky_actors::call::config::{DEFAULT_PLACE_TIMEOUT, DEFAULT_PORT_TIMEOUT};
    assert!(DEFAULT_CONNECT_TIMEOUT < DEFAULT_REQUEST_TIMEOUT);
    assert!(DEFAULT_REQUEST_TIMEOUT <= DEFAULT_PORT_BUDGET);
    assert!(DEFAULT_PORT_BUDGET < DEFAULT_PORT_TIMEOUT);
    assert!(DEFAULT_PLACE_BUDGET < DEFAULT_PLACE_TIMEOUT);
}

#[test]
fn numbers_become_e164() {
    assert_eq!(e164("+447700900000"), Ok("+447700900000".into()));
    assert_eq!(e164(" 447700900000 "), Ok("+447700900000".into()));
    for bad in [
        "",
        "+",
        "12",
        "+44 7700",
        "+4477009000001234",
        "abc",
        "++447700900000",
    ] {
        assert!(e164(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn transfer_posts_a_dial_twiml_once_and_reports_a_refusal() {
    let cases: Vec<(Canned, bool)> = vec![
        (canned(200, &created(SID)), true),
        (canned(404, &error(20404, 404, "not found")), false),
        (
            canned(400, &error(21220, 400, "Call is not in-progress")),
            false,
        ),
        (canned(500, ""), false),
    ];
    for (answer, ok) in cases {
        let status = answer.status;
        let (base, seen) = server(script(vec![answer])).await;
        let res = client(config(&base))
            .transfer(ProviderCallId(SID.into()), "+14155550199", "+14155550100")
            .await;
        assert_eq!(res.is_ok(), ok, "{status}: {res:?}");
        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 1, "sent once, never retried");
        let s = &seen[0];
        assert_eq!(s.method, "POST");
        assert_eq!(
            s.path,
            format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{SID}.json")
        );
        assert_eq!(
            s.form,
            vec![(
                "Twiml".to_owned(),
                crate::providers::twilio::twiml::dial_number("+14155550199", "+14155550100")
            )]
        );
        assert_eq!(s.auth.as_deref(), Some(basic(ACCOUNT, TOKEN).as_str()));
    }
}
