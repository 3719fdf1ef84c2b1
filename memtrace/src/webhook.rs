//! Posting alerts to a webhook, from a background thread that never holds up the caller.
//!
//! [`Webhook::send`] only puts the alert on a bounded queue; a thread of
//! its own posts it as JSON, with a timeout on each attempt and retries
//! after exponentially growing pauses. When the queue is full (the endpoint
//! is slow or dead) the alert is dropped. Drops and failures are logged and
//! counted in [`WebhookStats`]. Without the `webhook` cargo feature only
//! the settings and the body format are built, and no client.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
#[cfg(feature = "webhook")]
use std::{
    sync::{
        Arc,
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread,
};

use serde::{Deserialize, Serialize};

#[cfg(feature = "webhook")]
use crate::alerts::Sink;
use crate::alerts::{Alert, AlertState};

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The alert itself, as JSON.
    #[default]
    Json,
    /// `{"text": ...}`, as Slack's incoming webhooks take it.
    Slack,
}

/// Where and how to post alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    pub format: WebhookFormat,
    /// Longest wait for one attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// Pause before the first retry; each later one doubles it.
    pub backoff: Duration,
    /// Alerts waiting to be posted, beyond which new ones are dropped.
    pub queue: usize,
}

impl WebhookConfig {
    /// Defaults for `url`: JSON, 5 s timeout, 3 retries from 1 s, 64 queued.
    #[must_use]
    pub fn new(url: String) -> Self {
        Self {
            url,
            format: WebhookFormat::Json,
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_secs(1),
            queue: 64,
        }
    }
}

/// Counts of what happened to alerts sent to a webhook.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    /// Alerts given up on after every attempt failed.
    pub failed: AtomicU64,
    /// Alerts dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl WebhookStats {
    /// Alerts that did not reach the webhook: failed or dropped.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed)
    }
}

/// Errors starting a webhook.
#[cfg(feature = "webhook")]
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("failed to set up the HTTP client for webhook `{url}`")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("failed to start the webhook thread")]
    Thread(#[source] std::io::Error),
}

/// A webhook with its posting thread.
#[cfg(feature = "webhook")]
#[derive(Debug)]
pub struct Webhook {
    queue: Option<SyncSender<String>>,
    format: WebhookFormat,
    stats: Arc<WebhookStats>,
    done: Receiver<()>,
}

#[cfg(feature = "webhook")]
impl Webhook {
    /// Starts the thread that posts to `config.url`.
    pub fn start(config: &WebhookConfig) -> Result<Self, WebhookError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|source| WebhookError::Client {
                url: config.url.clone(),
                source,
            })?;
        let (queue, bodies) = mpsc::sync_channel(config.queue.max(1));
        let (finished, done) = mpsc::channel();
        let stats = Arc::new(WebhookStats::default());
        let poster = Poster {
            client,
            config: config.clone(),
            stats: Arc::clone(&stats),
        };
        thread::Builder::new()
            .name("memtrace-webhook".into())
            .spawn(move || {
                poster.run(&bodies);
                let _ = finished.send(());
            })
            .map_err(WebhookError::Thread)?;
        Ok(Self {
            queue: Some(queue),
            format: config.format,
            stats,
            done,
        })
    }

    /// The counts so far, shared with the posting thread.
    #[must_use]
    pub fn stats(&self) -> Arc<WebhookStats> {
        Arc::clone(&self.stats)
    }

    /// Stops taking alerts and waits up to `grace` for the queued ones to go out.
    pub fn close(&mut self, grace: Duration) {
        self.queue = None;
        match self.done.recv_timeout(grace) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                log::warn!("the webhook is still busy after {grace:?}: leaving its queue behind");
            }
        }
    }
}

#[cfg(feature = "webhook")]
impl Drop for Webhook {
    fn drop(&mut self) {
        // Let the thread finish on its own; never block on a dead endpoint.
        self.queue = None;
    }
}

#[cfg(feature = "webhook")]
impl Sink for Webhook {
    fn send(&mut self, alert: &Alert) {
        let Some(queue) = &self.queue else {
            return;
        };
        let Some(body) = body(alert, self.format) else {
            return;
        };
        match queue.try_send(body) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!("webhook queue full: alert #{} dropped", alert.id);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The JSON body for `alert` in `format`.
#[must_use]
pub fn body(alert: &Alert, format: WebhookFormat) -> Option<String> {
    match format {
        WebhookFormat::Json => serde_json::to_string(alert).ok(),
        WebhookFormat::Slack => {
            let text = match alert.state {
                AlertState::Firing => {
                    let mut text = format!("*memtrace* [{}] {}", alert.severity, alert.message);
                    for hint in &alert.recommendations {
                        text.push_str("\n• ");
                        text.push_str(hint);
                    }
                    text
                }
                AlertState::Resolved => format!("*memtrace* resolved: {}", alert.message),
            };
            serde_json::to_string(&serde_json::json!({ "text": text })).ok()
        }
    }
}

/// The posting side, owned by the thread.
#[cfg(feature = "webhook")]
struct Poster {
    client: reqwest::blocking::Client,
    config: WebhookConfig,
    stats: Arc<WebhookStats>,
}

#[cfg(feature = "webhook")]
impl Poster {
    fn run(&self, bodies: &Receiver<String>) {
        while let Ok(body) = bodies.recv() {
            if self.post_with_retries(&body) {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn post_with_retries(&self, body: &str) -> bool {
        let mut pause = self.config.backoff;
        for attempt in 0..=self.config.retries {
            if attempt > 0 {
                thread::sleep(pause);
                pause = pause.saturating_mul(2);
            }
            match self.post(body) {
                Ok(()) => return true,
                Err(reason) => log::warn!(
                    "webhook `{}` attempt {} of {} failed: {reason}",
                    self.config.url,
                    attempt + 1,
                    self.config.retries + 1
                ),
            }
        }
        false
    }

    fn post(&self, body: &str) -> Result<(), String> {
        let response = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .map_err(|err| err.to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }
}

#[cfg(all(test, feature = "webhook"))]
mod tests {
    use std::{
        io::{BufRead as _, BufReader, Read as _, Write as _},
        net::{TcpListener, TcpStream},
        sync::Mutex,
        time::Instant,
    };

    use super::*;
    use crate::{alerts::AlertKind, classify::Severity};

    fn alert(id: u64) -> Alert {
        Alert {
            id,
            t_s: 1.0,
            unix_s: 2,
            kind: AlertKind::Threshold,
            state: AlertState::Firing,
            key: "rss".into(),
            severity: Severity::High,
            consumer: None,
            message: "resident memory is 300.0 MiB".into(),
            recommendations: vec!["look at the top consumers".into()],
        }
    }

    /// Reads one HTTP request; returns its body.
    fn read_request(stream: &mut TcpStream) -> String {
        let mut reader = BufReader::new(stream.try_clone().expect("clones"));
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some((_, value)) = line
                .split_once(':')
                .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("reads the body");
        String::from_utf8(body).expect("utf-8")
    }

    /// A receiver on 127.0.0.1:0 answering every request with `status`;
    /// returns its URL and the bodies it received.
    fn receiver(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!(
            "http://{}/hook",
            listener.local_addr().expect("has an address")
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let body = read_request(&mut stream);
                seen.lock().expect("not poisoned").push(body);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (url, bodies)
    }

    fn quick(url: String) -> WebhookConfig {
        WebhookConfig {
            timeout: Duration::from_millis(300),
            retries: 2,
            backoff: Duration::from_millis(20),
            queue: 4,
            ..WebhookConfig::new(url)
        }
    }

    fn wait_until(what: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if what() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn alert_is_posted_as_json() {
        let (url, bodies) = receiver(200);
        let mut webhook = Webhook::start(&quick(url)).expect("starts");
        webhook.send(&alert(1));
        let stats = webhook.stats();
        assert!(wait_until(|| stats.delivered.load(Ordering::Relaxed) == 1));
        let received: Alert =
            serde_json::from_str(&bodies.lock().expect("not poisoned")[0]).expect("is an alert");
        assert_eq!(received, alert(1));
    }

    #[test]
    fn slack_format_posts_text() {
        let (url, bodies) = receiver(200);
        let mut webhook = Webhook::start(&WebhookConfig {
            format: WebhookFormat::Slack,
            ..quick(url)
        })
        .expect("starts");
        webhook.send(&alert(1));
        let stats = webhook.stats();
        assert!(wait_until(|| stats.delivered.load(Ordering::Relaxed) == 1));
        let body: serde_json::Value =
            serde_json::from_str(&bodies.lock().expect("not poisoned")[0]).expect("is JSON");
        let text = body["text"].as_str().expect("has text");
        assert!(
            text.contains("[high] resident memory is 300.0 MiB"),
            "{text}"
        );
    }

    #[test]
    fn server_error_is_retried_then_counted_as_a_failure() {
        let (url, bodies) = receiver(500);
        let mut webhook = Webhook::start(&quick(url)).expect("starts");
        webhook.send(&alert(1));
        let stats = webhook.stats();
        assert!(wait_until(|| stats.failed.load(Ordering::Relaxed) == 1));
        assert_eq!(bodies.lock().expect("not poisoned").len(), 3);
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn hanging_receiver_neither_stalls_the_caller_nor_goes_uncounted() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!(
            "http://{}/hook",
            listener.local_addr().expect("has an address")
        );
        // Accepts connections and never answers.
        let held = Arc::new(Mutex::new(Vec::new()));
        let holder = Arc::clone(&held);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                holder.lock().expect("not poisoned").push(stream);
            }
        });

        let mut webhook = Webhook::start(&quick(url)).expect("starts");
        let started = Instant::now();
        for id in 0..20 {
            webhook.send(&alert(id));
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );

        let stats = webhook.stats();
        assert!(stats.dropped.load(Ordering::Relaxed) >= 15);
        assert!(wait_until(|| stats.failed.load(Ordering::Relaxed) >= 1));
        let closing = Instant::now();
        webhook.close(Duration::from_millis(50));
        assert!(closing.elapsed() < Duration::from_millis(500));
    }
}
