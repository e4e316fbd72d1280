//! The operator console in a real browser: headless Chromium (Debian's
//! `chromium`, installed by scripts/services.sh) driven over WebDriver by
//! `fantoccini` through Debian's `chromedriver` (ARCHITECTURE.md, "Browser
//! tests"), against the real server of a [`TestApp`].
//!
//! The [`Browser`] below is the toolbox for every console test: launch,
//! goto, click, type, wait for an element or a text, set a file input,
//! run a script, and take a screenshot into `target/console/` that is
//! checked not blank. Every wait polls with a deadline; the browser (the
//! chromedriver process group, with the Chromium it started) is killed
//! when the [`Browser`] is dropped, also when a test fails.
//!
//! Environment: `TALKY_CHROMIUM` (default `/usr/bin/chromium`) and
//! `TALKY_CHROMEDRIVER` (default `/usr/bin/chromedriver`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use talky_sim::vonage::persona::Personas;

use crate::e2e::{persona_for, world};
use crate::support::TestApp;

/// How long a wait for the page lasts by default (generous: the whole
/// `it` suite shares two cores with the browser).
const WAIT: Duration = Duration::from_secs(15);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// A headless Chromium behind its chromedriver. Dropping it kills both.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    /// Chromium's profile, the chromedriver log and the test's files;
    /// removed on drop unless the test is failing.
    dir: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session
    /// with headless Chromium at 1280x800 and a fresh profile.
    pub async fn launch() -> Browser {
        let chromium =
            std::env::var("TALKY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let chromedriver =
            std::env::var("TALKY_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let dir = std::env::temp_dir().join(format!("talky-browser-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("profile")).expect("browser temp dir");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("log file");
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                // Its own process group, which the Chromium it starts
                // joins: Drop kills the whole group.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start {chromedriver} (scripts/services.sh installs it): {e}")
                })
        };
        let mut browser = Browser {
            client: None,
            driver,
            dir,
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!(
                    "chromedriver exited ({status}); see {}",
                    browser.log_path().display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {webdriver}"
            );
            tokio::time::sleep(POLL).await;
        }
        let profile = browser.dir.join("profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let client = tokio::time::timeout(Duration::from_secs(20), builder.connect(&webdriver))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no WebDriver session within 20 s; see {}",
                    browser.log_path().display()
                )
            })
            .unwrap_or_else(|e| {
                panic!(
                    "WebDriver session: {e}; see {}",
                    browser.log_path().display()
                )
            });
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("chromedriver.log")
    }

    /// A folder of this browser's own, removed with it: for files a test
    /// hands to the page (uploads).
    pub fn scratch_dir(&self) -> &Path {
        &self.dir
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        tokio::time::timeout(WAIT, self.client().goto(url))
            .await
            .unwrap_or_else(|_| panic!("goto {url}: not loaded within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The URL the page is at now.
    pub async fn url(&self) -> String {
        self.client()
            .current_url()
            .await
            .expect("current url")
            .to_string()
    }

    /// Waits for a displayed element matching `css` and returns the first.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.poll(&format!("a displayed {css}"), WAIT, || async {
            for el in self.client().find_all(Locator::Css(css)).await.ok()? {
                if el.is_displayed().await.unwrap_or(false) {
                    return Some(el);
                }
            }
            None
        })
        .await
    }

    /// Waits until an element matching `css` shows a text containing
    /// `needle`; returns that element's whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        self.poll(&format!("{css} showing {needle:?}"), WAIT, || async {
            for el in self.client().find_all(Locator::Css(css)).await.ok()? {
                if let Ok(text) = el.text().await
                    && text.contains(needle)
                {
                    return Some(text);
                }
            }
            None
        })
        .await
    }

    /// Waits for `css` and clicks it.
    pub async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits for the input `css`, empties it and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Sets the file of the `<input type=file>` `css` (hidden or not) to
    /// `path`, as the file picker would; the page sees a `change` event.
    pub async fn set_file(&self, css: &str, path: &Path) {
        let el = self
            .poll(&format!("{css} in the page"), WAIT, || async {
                self.client().find(Locator::Css(css)).await.ok()
            })
            .await;
        let path = path.canonicalize().expect("file path");
        el.send_keys(path.to_str().expect("utf-8 path"))
            .await
            .unwrap_or_else(|e| panic!("set file {} on {css}: {e}", path.display()));
    }

    /// Hands `csv` to the page's contacts file input as `contacts.csv`,
    /// as the file picker would.
    pub async fn upload_contacts(&self, csv: &str) {
        let path = self.scratch_dir().join("contacts.csv");
        std::fs::write(&path, csv).expect("write csv");
        self.set_file("#contacts-file", &path).await;
    }

    /// Waits for `css` and scrolls it to the middle of the viewport (before
    /// a screenshot of what lies below the fold).
    pub async fn scroll_to(&self, css: &str) {
        let el = self.wait_for(css).await;
        let arg = serde_json::to_value(&el).expect("element as a script argument");
        self.eval(
            "arguments[0].scrollIntoView({ block: 'center' });",
            vec![arg],
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the
    /// page and returns what it returns.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Saves the viewport as `target/console/{name}.png`, checks that it
    /// is not blank, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("target/console");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("write screenshot");
        assert_not_blank(&png, &path);
        path
    }

    /// Resizes the window to `width` x `height` CSS pixels and waits for
    /// the page to lay out again at that width.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client()
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize to {width}x{height}: {e}"));
        self.poll(&format!("a {width} px wide layout"), WAIT, || async {
            let w = self.eval("return window.innerWidth;", vec![]).await;
            (w.as_u64().is_some_and(|w| w <= u64::from(width))).then_some(())
        })
        .await;
    }

    /// Asserts that the page fits its viewport's width (nothing to scroll
    /// sideways: readable on a phone).
    pub async fn assert_fits_width(&self, what: &str) {
        let v = self
            .eval(
                "const d = document.documentElement;
                 return { scroll: d.scrollWidth, view: window.innerWidth };",
                vec![],
            )
            .await;
        let (scroll, view) = (v["scroll"].as_u64(), v["view"].as_u64());
        assert!(
            scroll.is_some() && scroll <= view,
            "{what} is wider than the viewport: {v}"
        );
    }

    /// Polls `check` every 50 ms until it gives a value; panics naming
    /// `what` past `within`.
    pub async fn poll<T, F, Fut>(&self, what: &str, within: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // One look may hang on a busy browser: it too has the deadline.
            if let Ok(Some(v)) = tokio::time::timeout(left.max(POLL), check()).await {
                return v;
            }
            if Instant::now() >= deadline {
                let url = tokio::time::timeout(Duration::from_secs(2), self.client().current_url())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                // What the page showed instead, for whoever reads the failure.
                let shot = screenshot_dir().join("failed-wait.png");
                if let Ok(Ok(png)) =
                    tokio::time::timeout(Duration::from_secs(5), self.client().screenshot()).await
                {
                    let _ = std::fs::create_dir_all(screenshot_dir());
                    let _ = std::fs::write(&shot, png);
                }
                panic!(
                    "waited {within:?} for {what} (page {url}; screenshot {})",
                    shot.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Ends the session politely (Chromium quits); Drop then stops
    /// chromedriver. Without it, Drop kills both.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SIGKILL to the process group: chromedriver and the Chromium
        // processes it started (they stay in its group).
        let pgid = self.driver.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals the process group
        // we created for chromedriver; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        if std::thread::panicking() {
            eprintln!(
                "browser files kept for the failure: {} (chromedriver.log, profile/)",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `target/console` (under `CARGO_TARGET_DIR` when set).
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("console")
}

/// Panics unless `png` decodes to a non-empty image of more than one
/// colour.
pub fn assert_not_blank(png: &[u8], path: &Path) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().expect("image size fits")];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: undecodable: {e}", path.display()));
    assert!(
        info.width > 0 && info.height > 0,
        "{}: empty image {}x{}",
        path.display(),
        info.width,
        info.height
    );
    let bpp = info.line_size / info.width as usize;
    let pixels = &buf[..info.buffer_size()];
    let first = &pixels[..bpp];
    let mut rows = pixels.chunks(info.line_size);
    assert!(
        rows.any(|row| row.chunks(bpp).any(|px| px != first)),
        "{}: blank ({}x{} of one colour)",
        path.display(),
        info.width,
        info.height
    );
}

/// Sign in, a server validation error next to its field, a campaign
/// created through the form, a CSV with one bad line through the file
/// input and its import report, the list; a screenshot of each page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_creates_a_campaign_and_uploads_contacts() {
    let started = Instant::now();
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let browser = Browser::launch().await;

    // Sign in.
    browser.goto(&format!("{}/console", app.base)).await;
    browser.wait_for("#sign-in-form").await;
    browser.screenshot("sign-in").await;
    browser.type_into("#sign-in-key", &key).await;
    browser.click("#sign-in-submit").await;
    browser
        .wait_for_text("[data-testid=page-title]", "Campaigns")
        .await;
    browser.wait_for_text("#view", "No campaigns yet").await;
    browser.screenshot("campaigns-empty").await;

    // The form, first without a greeting: the server's 422 names
    // agent.greeting and the console shows it beside that field.
    browser.click("#new-campaign").await;
    browser.wait_for("#campaign-form").await;
    browser.type_into("#cf-name", "Spring renewals").await;
    browser.type_into("#cf-caller_id", "+14155550100").await;
    browser
        .type_into("#cf-agent-system_prompt", "You are a polite assistant.")
        .await;
    browser.click("#campaign-save").await;
    let error = browser
        .wait_for_text("[data-testid='error-agent.greeting']", "must not be empty")
        .await;
    assert_eq!(error, "must not be empty");
    browser
        .wait_for_text("[data-testid=form-errors]", "Some settings are not valid")
        .await;
    let beside = browser
        .eval(
            "const input = document.getElementById('cf-agent-greeting');
             const box = input.closest('.field');
             return { error: box.querySelector('.field-error').textContent,
                      invalid: input.getAttribute('aria-invalid') };",
            vec![],
        )
        .await;
    assert_eq!(
        beside,
        json!({ "error": "must not be empty", "invalid": "true" })
    );
    assert!(
        browser.url().await.ends_with("#/campaigns/new"),
        "a refused form stays on the form"
    );
    browser.screenshot("campaign-form-error").await;

    // With the greeting: created, and the page moves to the campaign.
    browser
        .type_into("#cf-agent-greeting", "Hello, this is Ada from Acme.")
        .await;
    browser.click("#campaign-save").await;
    browser
        .wait_for_text("[data-testid=page-title]", "Spring renewals")
        .await;
    browser.wait_for_text("#campaign-state", "draft").await;
    let url = browser.url().await;
    let id = url
        .rsplit_once("#/campaigns/")
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| panic!("not on a campaign page: {url}"));
    let (status, campaign) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(status, 200, "{campaign}");
    assert_eq!(
        campaign["agent"]["greeting"],
        "Hello, this is Ada from Acme."
    );
    browser.wait_for_text("#view", "no contacts yet").await;

    // A CSV with one bad line (line 3; the header is line 1) through the
    // file input: the import report lists that line.
    browser
        .upload_contacts("phone,name\n+14155550101,Ann\nnot a number,Bad\n+14155550102,Cy\n")
        .await;
    browser
        .wait_for_text("[data-testid=import-accepted]", "2 accepted")
        .await;
    browser
        .wait_for_text("[data-testid=import-invalid]", "1 rejected")
        .await;
    let row = browser
        .wait_for_text("[data-testid=import-error-row][data-line='3']", "3")
        .await;
    assert!(
        row.starts_with('3'),
        "the line number leads the row: {row:?}"
    );
    let lines = browser
        .eval(
            "return [...document.querySelectorAll('[data-testid=import-error-row]')]
                 .map((r) => r.dataset.line);",
            vec![],
        )
        .await;
    assert_eq!(lines, json!(["3"]), "only the bad line is reported");
    browser.wait_for_text("#view", "0 of 2 contacts done").await;
    browser.wait_for_text("#contacts-table", "Ann").await;
    browser.scroll_to("#import-report").await;
    browser.screenshot("campaign-import-report").await;

    // Back to the list: the campaign with its contacts.
    browser.click("[data-testid=nav-campaigns]").await;
    browser
        .wait_for_text("[data-testid=campaign-row]", "Spring renewals")
        .await;
    browser
        .wait_for_text("[data-testid=campaign-row]", "0 of 2 contacts done")
        .await;
    browser.screenshot("campaigns").await;

    browser.close().await;
    app.stop().await;
    eprintln!("console_browser: {:?}", started.elapsed());
}

/// The operator's day with the emulators on the other end of the line:
/// a recorded campaign gets a CSV with one bad line through the page, is
/// started, its call shows up live with the transcript growing while the
/// call goes on, the finished call's page plays its recording (the
/// `<audio>` element reads a duration above zero), and the campaign,
/// still running for a busy contact's retry, is stopped from its page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_campaign_watches_it_live_and_plays_the_recording() {
    let started = Instant::now();
    let talker = "+442079460981";
    let busy = "+442079460982";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", talker);
    persona_for(&mut personas, "busy", busy);
    let world = world(personas).await;
    let app = &world.app;
    let (_, key) = app.tenant("acme").await;
    // The form has its own test: this campaign comes from the API,
    // recorded, and with an hour between attempts so that the busy
    // contact keeps it running.
    let mut body = crate::support::campaign_body("Live renewals");
    body["calling_window"] = json!({ "start": "00:00", "end": "23:59",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] });
    body["recording_enabled"] = json!(true);
    body["max_attempts"] = json!(3);
    body["retry_backoff_secs"] = json!(3600);
    let (status, campaign) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().expect("id").to_owned();

    let browser = Browser::launch().await;
    browser.goto(&format!("{}/console", app.base)).await;
    browser.type_into("#sign-in-key", &key).await;
    browser.click("#sign-in-submit").await;
    browser
        .wait_for_text("[data-testid=page-title]", "Campaigns")
        .await;
    browser
        .goto(&format!("{}/console#/campaigns/{id}", app.base))
        .await;
    browser
        .wait_for_text("[data-testid=page-title]", "Live renewals")
        .await;

    // Contacts, one line of them bad.
    browser
        .upload_contacts(&format!(
            "phone,timezone\n{talker},Europe/London\n0044 bad,Europe/London\n{busy},Europe/London\n"
        ))
        .await;
    browser
        .wait_for_text("[data-testid=import-invalid]", "1 rejected")
        .await;
    browser
        .wait_for_text("[data-testid=import-error-row][data-line='3']", "3")
        .await;
    browser.wait_for_text("#view", "0 of 2 contacts done").await;

    // Start it.
    browser.click("#campaign-start").await;
    browser.wait_for_text("#campaign-state", "running").await;
    browser.screenshot("campaign-running").await;

    // Live: the call appears and its transcript grows while it goes on.
    browser.click("[data-testid=nav-live]").await;
    browser.wait_for_text("#live-status", "Live").await;
    let row = "[data-testid=live-call-row]";
    let mut lengths: Vec<usize> = Vec::new();
    let mut shot = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let seen = browser
            .eval(
                "const row = [...document.querySelectorAll(arguments[0])]
                     .find((r) => r.querySelector('[data-testid=live-turn]'));
                 return row ? row.querySelector('[data-testid=live-transcript]').textContent.length : null;",
                vec![json!(row)],
            )
            .await;
        match seen.as_u64() {
            Some(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if lengths.last() != Some(&n) {
                    lengths.push(n);
                }
                if !shot && lengths.len() >= 2 {
                    browser.screenshot("live").await;
                    shot = true;
                }
            }
            // The call left the live list: it is over.
            None if !lengths.is_empty() => break,
            None => {}
        }
        assert!(
            Instant::now() < deadline,
            "the call never ended on the live page: {lengths:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grew = lengths.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(
        grew >= 2,
        "the transcript grew while the call was live: lengths seen {lengths:?}"
    );

    // The finished call's page: transcript and the recording playing.
    let calls = crate::e2e::finished_calls(app, &key, &id, 2).await;
    let call = calls
        .iter()
        .find(|c| c["outcome"] != "busy")
        .unwrap_or_else(|| panic!("the talker's call: {calls:?}"));
    let call_id = call["id"].as_str().expect("call id");
    let open_call = || async {
        browser
            .goto(&format!("{}/console#/calls/{call_id}", app.base))
            .await;
        browser
            .wait_for_text("#transcript", "Yes, I am interested")
            .await;
    };
    open_call().await;
    let audio = browser
        .poll("the recording's duration", Duration::from_secs(60), || async {
            // Not ready yet (409): the page offers a retry; press it.
            let v = browser
                .eval(
                    "const a = document.getElementById('recording-audio');
                     const retry = document.getElementById('recording-retry');
                     if (!a && retry && Date.now() - (window.lastRetry || 0) > 1000) {
                       window.lastRetry = Date.now();
                       retry.click();
                     }
                     if (!a) return null;
                     return { duration: a.duration, ready: a.readyState, error: a.error && a.error.code };",
                    vec![],
                )
                .await;
            let d = v["duration"].as_f64()?;
            (d.is_finite() && d > 0.0).then_some(v)
        })
        .await;
    assert_eq!(audio["error"], Value::Null, "{audio}");
    browser
        .wait_for_text("#call-deliveries", "No webhook deliveries")
        .await;
    browser.scroll_to("#recording-audio").await;
    browser.screenshot("call-recording").await;

    // Stop it: it still runs for the busy contact's retry.
    browser
        .goto(&format!("{}/console#/campaigns/{id}", app.base))
        .await;
    browser.wait_for_text("#campaign-state", "running").await;
    browser.click("#campaign-stop").await;
    browser
        .poll("the confirmation", WAIT, || async {
            browser.client().accept_alert().await.ok()
        })
        .await;
    browser
        .wait_for_text("[data-testid=lifecycle-message]", "Campaign")
        .await;
    let (_, stored) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert!(
        ["stopping", "cancelled"].contains(&stored["state"].as_str().unwrap_or("")),
        "{stored}"
    );
    browser.screenshot("campaign-stopped").await;

    // On a phone-sized viewport the pages still fit: nothing to scroll
    // sideways.
    browser.resize(390, 844).await;
    browser.assert_fits_width("the campaign page").await;
    browser.screenshot("phone-campaign").await;
    open_call().await;
    browser.assert_fits_width("the call page").await;
    browser.screenshot("phone-call").await;

    browser.close().await;
    world.app.stop().await;
    eprintln!("console_browser (live): {:?}", started.elapsed());
}
