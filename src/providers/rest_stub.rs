//! A tiny stand-in for a provider's REST API on 127.0.0.1:0, for the
//! telephony clients' unit tests (Vonage's and Twilio's): it records every
//! request and answers what the test's handler says, after an optional
//! delay (to time a client out).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warp::Filter;

/// One request as the stand-in received it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    /// The raw query string (empty without one).
    pub(crate) query: String,
    pub(crate) auth: Option<String>,
    pub(crate) content_type: Option<String>,
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) body: serde_json::Value,
    /// The body as a form (empty when it is not one).
    pub(crate) form: Vec<(String, String)>,
}

impl Seen {
    /// Every value of form field `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of form field `name` (a test failure unless exactly
    /// one).
    pub(crate) fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        all[0]
    }
}

/// An answer of the stand-in.
pub(crate) struct Canned {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    /// Waited before answering.
    pub(crate) delay: Duration,
}

/// `status` with `body`, at once.
pub(crate) fn canned(status: u16, body: &str) -> Canned {
    Canned {
        status,
        headers: vec![],
        body: body.to_owned(),
        delay: Duration::ZERO,
    }
}

/// What answers each request.
pub(crate) type Handler = Arc<dyn Fn(&Seen) -> Canned + Send + Sync>;

/// Starts the stand-in: its base URL and the log of requests.
pub(crate) async fn server(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let route = warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
        .and_then(
            move |m: warp::http::Method,
                  p: warp::path::FullPath,
                  q: String,
                  auth: Option<String>,
                  ct: Option<String>,
                  body: bytes::Bytes| {
                let log = Arc::clone(&log);
                let handler = Arc::clone(&handler);
                async move {
                    let s = Seen {
                        method: m.to_string(),
                        path: p.as_str().to_owned(),
                        query: q,
                        auth,
                        content_type: ct,
                        body: serde_json::from_slice(&body).unwrap_or_default(),
                        form: serde_urlencoded::from_bytes(&body).unwrap_or_default(),
                    };
                    let c = handler(&s);
                    log.lock().expect("log").push(s);
                    tokio::time::sleep(c.delay).await;
                    let mut r = warp::http::Response::builder().status(c.status);
                    for (k, v) in c.headers {
                        r = r.header(k, v);
                    }
                    Ok::<_, Infallible>(r.body(c.body).expect("response"))
                }
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}"), seen)
}

/// Answers the canned responses in order, one per request.
pub(crate) fn script(answers: Vec<Canned>) -> Handler {
    let answers = Mutex::new(answers.into_iter());
    Arc::new(move |_| {
        answers
            .lock()
            .expect("answers")
            .next()
            .expect("no more answers scripted")
    })
}

/// A port that nothing listens on (bound, then let go).
pub(crate) fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr
}
