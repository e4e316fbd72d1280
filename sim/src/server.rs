//! The loopback scaffolding every HTTP/WebSocket emulator shares: bind
//! 127.0.0.1 (any free port or a given one), serve a warp filter with a
//! graceful shutdown, and stop on [`LoopbackServer::stop`] or drop. The
//! emulator's handlers see the same stop as a [`Shutdown`] so that slow
//! or half-open replies end with the server instead of holding it up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use warp::Filter;

/// How long [`LoopbackServer::stop`] waits for open connections to end
/// before giving up on them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Locks a mutex, going on with the data if a panicking holder poisoned
/// it: an emulator's knobs and logs stay usable after a failed test.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server's stop as its handlers see it: cheap to clone, never fires
/// twice.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once the server is stopping (at once if it already is, or
    /// if the server is gone).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Sleeps `d`; false if the server stops meanwhile (true at once for
    /// a zero `d`).
    pub async fn pause(&self, d: Duration) -> bool {
        if d.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.wait() => false,
        }
    }
}

/// A warp server on 127.0.0.1; stops when dropped (open connections are
/// aborted) or [`stop`](Self::stop)ped (they get a short grace).
#[derive(Debug)]
pub struct LoopbackServer {
    /// Where it listens.
    addr: SocketAddr,
    /// Tells the server and the handlers to stop.
    stop: watch::Sender<bool>,
    /// The serving task; taken by `stop` or drop.
    task: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Binds 127.0.0.1:`port` (0: any free port), lets `build` make the
    /// emulator's state and routes from the [`Shutdown`] its handlers
    /// will watch, and serves the routes in a spawned task. Returns the
    /// server and the state.
    pub async fn start<S, F>(
        port: u16,
        build: impl FnOnce(Shutdown) -> (S, F),
    ) -> std::io::Result<(Self, S)>
    where
        F: Filter + Clone + Send + Sync + 'static,
        F::Extract: warp::Reply,
    {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (stop, rx) = watch::channel(false);
        let shutdown = Shutdown(rx);
        let (state, routes) = build(shutdown.clone());
        let task = tokio::spawn(async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move { shutdown.wait().await })
                .run()
                .await;
        });
        let server = Self {
            addr,
            stop,
            task: Some(task),
        };
        Ok((server, state))
    }

    /// [`LoopbackServer::start`] for an emulator whose state is shared
    /// with its routes: `state` makes it from the [`Shutdown`], `routes`
    /// the routes over it.
    pub async fn start_shared<S, F>(
        port: u16,
        state: impl FnOnce(Shutdown) -> S,
        routes: impl FnOnce(Arc<S>) -> F,
    ) -> std::io::Result<(Self, Arc<S>)>
    where
        F: Filter + Clone + Send + Sync + 'static,
        F::Extract: warp::Reply,
    {
        Self::start(port, |shutdown| {
            let shared = Arc::new(state(shutdown));
            (shared.clone(), routes(shared))
        })
        .await
    }

    /// Where it listens (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits (briefly) for the server to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(STOP_GRACE, task).await;
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            // Connections still open when dropped do not keep it alive.
            task.abort();
        }
    }
}

/// What an emulator's handlers and its handle share: the knobs (changed
/// while it runs), the log of requests it received, the server's stop, and
/// whatever else that emulator keeps (`X`).
pub struct Shared<C, R, X = ()> {
    pub(crate) cfg: Mutex<C>,
    pub(crate) log: Mutex<Vec<R>>,
    pub(crate) shutdown: Shutdown,
    pub(crate) extra: X,
}

impl<C, R, X> Shared<C, R, X> {
    /// Changes the logged request at `index` (a handler fills its entry
    /// in as the exchange goes on); nothing if there is none.
    pub(crate) fn log_mut(&self, index: usize, f: impl FnOnce(&mut R)) {
        if let Some(r) = lock(&self.log).get_mut(index) {
            f(r);
        }
    }

    /// Resolves once the server is stopping.
    pub(crate) async fn wait_shutdown(&self) {
        self.shutdown.wait().await;
    }

    /// Sleeps `d`; false if the emulator stops meanwhile.
    pub(crate) async fn pause(&self, d: Duration) -> bool {
        self.shutdown.pause(d).await
    }
}

/// What the handle needs to know of an emulator's knobs.
pub trait SimConfig {
    /// The scheme of the client's base URL (`ws` for a socket-only API).
    const BASE_SCHEME: &'static str = "http";
    /// The key clients must present.
    fn api_key(&self) -> &str;
}

/// A running emulator; stops when dropped or [`stop`](Self::stop)ped.
pub struct Emulator<C, R, X = ()> {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    pub(crate) shared: Arc<Shared<C, R, X>>,
    /// Serves the routes; stopping or dropping it stops the emulator.
    server: LoopbackServer,
}

impl<C, R, X> Emulator<C, R, X>
where
    C: Send + 'static,
    R: Send + 'static,
    X: Send + Sync + 'static,
{
    /// Binds 127.0.0.1:`port` (0: any free port) and serves the routes
    /// `routes` makes over the shared state until the handle goes.
    pub(crate) async fn start<F>(
        port: u16,
        cfg: C,
        extra: X,
        routes: impl FnOnce(Arc<Shared<C, R, X>>) -> F,
    ) -> std::io::Result<Self>
    where
        F: Filter + Clone + Send + Sync + 'static,
        F::Extract: warp::Reply,
    {
        let state = |shutdown| Shared {
            cfg: Mutex::new(cfg),
            log: Mutex::new(Vec::new()),
            shutdown,
            extra,
        };
        let (server, shared) = LoopbackServer::start_shared(port, state, routes).await?;
        Ok(Self {
            addr: server.addr(),
            shared,
            server,
        })
    }
}

impl<C, R, X> Emulator<C, R, X> {
    /// `ws://127.0.0.1:<port>`: the client's WebSocket base URL.
    pub fn ws_base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Changes knobs for the following requests.
    pub fn update(&self, f: impl FnOnce(&mut C)) {
        f(&mut lock(&self.shared.cfg));
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Stops serving and waits for the server to end.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

impl<C: Clone, R: Clone, X> Emulator<C, R, X> {
    /// A copy of the knobs.
    pub fn config(&self) -> C {
        lock(&self.shared.cfg).clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<R> {
        lock(&self.shared.log).clone()
    }
}

impl<C: SimConfig, R, X> Emulator<C, R, X> {
    /// `http://127.0.0.1:<port>` (`ws://` for a socket-only API): the
    /// client's base URL.
    pub fn base_url(&self) -> String {
        format!("{}://{}", C::BASE_SCHEME, self.addr)
    }

    /// The key clients must present.
    pub fn api_key(&self) -> String {
        lock(&self.shared.cfg).api_key().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> impl Filter<Extract = (&'static str,), Error = warp::Rejection> + Clone {
        warp::path!("hello").map(|| "hi")
    }

    async fn get(addr: SocketAddr) -> Result<String, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        client
            .get(format!("http://{addr}/hello"))
            .send()
            .await?
            .text()
            .await
    }

    #[tokio::test]
    async fn serves_until_stopped_and_tells_handlers() {
        let (server, shutdown) = LoopbackServer::start(0, |sd| (sd, hello()))
            .await
            .expect("bind");
        let addr = server.addr();
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        assert_eq!(get(addr).await.expect("served"), "hi");
        assert!(shutdown.pause(Duration::from_millis(1)).await);
        server.stop().await;
        assert!(!shutdown.pause(Duration::from_secs(5)).await);
        assert!(get(addr).await.is_err(), "still serving after stop");
    }

    #[tokio::test]
    async fn drop_stops_it() {
        let (server, shutdown) = LoopbackServer::start(0, |sd| (sd, hello()))
            .await
            .expect("bind");
        let addr = server.addr();
        drop(server);
        tokio::time::timeout(Duration::from_secs(2), shutdown.wait())
            .await
            .expect("shutdown seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(get(addr).await.is_err(), "still serving after drop");
    }
}
