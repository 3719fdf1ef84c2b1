//! Monitoring settings: a TOML file, command-line flags over it, defaults under both.
//!
//! Every setting has a key in the file and a flag; a flag given on the
//! command line wins over the file, and the file over the default. Values
//! are read by the same parsers either way, so `80MB`, `5MB/min`, `7d` and
//! `off` mean the same in both. A bad value in the file names its key and
//! what the key takes.
//!
//! ```toml
//! [monitor]
//! snapshot_interval = "30s"
//! analysis_interval = "2m"
//! analysis_window = "30m"
//! memory_limit = "off"          # or a size; time-to-limit uses it
//!
//! [store]
//! data_dir = "/var/lib/memtrace"
//! retention = "7d"
//! max_size = "off"              # or a size, like "500MB"
//!
//! [output]
//! events = "-"                  # JSON lines on stdout, or a file
//! alert_file = "alerts.jsonl"
//! console = true                # one line per alert on stderr
//!
//! [webhook]
//! url = "https://hooks.example.com/memtrace"
//! format = "json"               # or "slack"
//! timeout = "5s"
//! retries = 3
//!
//! [alerts]
//! per_hour = 10
//! min_confidence = 70
//! untracked = "80MiB"           # each threshold also takes "off"
//! rss_ratio = 1.5
//! rss = "200MiB"
//! growth = "5MiB/min"
//! consumer_size = "100MiB"
//! consumer_growth = "2MiB/min"
//! ```

use std::{collections::BTreeMap, fs, io, path::PathBuf, time::Duration};

use clap::Args;

use crate::{
    alerts::AlertSettings,
    units::{parse_bytes, parse_rate, parse_span},
    webhook::{WebhookConfig, WebhookFormat},
};

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read the config file `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the config file `{}` is not valid TOML", .path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("unknown key `{key}` in the config file: the keys are {known}")]
    UnknownKey { key: String, known: String },
    #[error("invalid `{key}` = {value}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("`{key}` ({value}) must not be shorter than `{other}`")]
    Order {
        key: &'static str,
        value: String,
        other: &'static str,
    },
}

/// A threshold given a value, or turned off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Toggle<T> {
    Off,
    On(T),
}

impl<T> Toggle<T> {
    fn into_option(self) -> Option<T> {
        match self {
            Toggle::Off => None,
            Toggle::On(value) => Some(value),
        }
    }
}

/// Every monitoring setting, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    pub snapshot_interval: Duration,
    pub analysis_interval: Duration,
    /// How far back each analysis looks; old bytes are those allocated before it.
    pub analysis_window: Duration,
    /// Size at which the process runs out of memory, for time-to-limit; when
    /// off, the cgroup's `memory.max` or what `MemAvailable` leaves is used.
    pub memory_limit: Option<u64>,
    pub data_dir: Option<PathBuf>,
    pub retention: Duration,
    pub max_data_bytes: Option<u64>,
    /// Where to stream events; `-` is stdout.
    pub events: Option<PathBuf>,
    pub alert_file: Option<PathBuf>,
    /// Whether alerts are also printed on stderr.
    pub console_alerts: bool,
    pub webhook: Option<WebhookConfig>,
    pub alerts: AlertSettings,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            snapshot_interval: Duration::from_secs(30),
            analysis_interval: Duration::from_mins(2),
            analysis_window: Duration::from_mins(30),
            memory_limit: None,
            data_dir: None,
            retention: Duration::from_hours(7 * 24),
            max_data_bytes: None,
            events: None,
            alert_file: None,
            console_alerts: true,
            webhook: None,
            alerts: AlertSettings::default(),
        }
    }
}

/// Monitoring flags; each overrides its key in `--config`.
#[derive(Clone, Debug, Default, Args)]
pub struct MonitorArgs {
    /// Read monitoring settings from this TOML file (flags win over it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// How often to snapshot the target [default: 30s].
    #[arg(long, value_parser = flag(parse_interval), value_name = "DURATION")]
    pub snapshot_interval: Option<Duration>,

    /// How often to classify growth patterns [default: 2m].
    #[arg(long, value_parser = flag(parse_interval), value_name = "DURATION")]
    pub analysis_interval: Option<Duration>,

    /// How far back each analysis looks [default: 30m].
    #[arg(long, value_parser = flag(parse_interval), value_name = "DURATION")]
    pub analysis_window: Option<Duration>,

    /// Memory limit for time-to-limit estimates, or `off` for the cgroup's or the system's [default: off].
    #[arg(long, value_parser = flag(parse_size_toggle), value_name = "SIZE|off")]
    pub memory_limit: Option<Toggle<u64>>,

    /// Keep snapshots, consumer samples and alerts in this directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Delete data older than this (e.g. `7d`, `12h`) [default: 7d].
    #[arg(long, value_parser = flag(parse_interval), value_name = "DURATION")]
    pub retention: Option<Duration>,

    /// Delete the oldest data beyond this size (e.g. `500MB`), or `off` [default: off].
    #[arg(long, value_parser = flag(parse_size_toggle), value_name = "SIZE|off")]
    pub max_data_size: Option<Toggle<u64>>,

    /// Stream snapshot, pattern and alert events as JSON lines to FILE, or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    pub events: Option<PathBuf>,

    /// Append alerts as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub alert_file: Option<PathBuf>,

    /// POST each alert as JSON to this URL.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,

    /// Body of webhook posts [default: json].
    #[arg(long, value_parser = flag(parse_format), value_name = "json|slack")]
    pub webhook_format: Option<WebhookFormat>,

    /// Longest wait for one webhook post [default: 5s].
    #[arg(long, value_parser = flag(parse_interval), value_name = "DURATION")]
    pub webhook_timeout: Option<Duration>,

    /// Webhook posts retried this many times, with growing pauses [default: 3].
    #[arg(long, value_parser = flag(parse_count), value_name = "N")]
    pub webhook_retries: Option<u32>,

    /// Do not print alerts on stderr.
    #[arg(long)]
    pub no_console_alerts: bool,

    /// Most alerts sent in any hour [default: 10].
    #[arg(long, value_parser = flag(parse_count), value_name = "N")]
    pub alerts_per_hour: Option<u32>,

    /// Least confidence (0-100) of a pattern that raises an alert [default: 70].
    #[arg(long, value_parser = flag(parse_confidence), value_name = "N")]
    pub min_confidence: Option<u8>,

    /// Alert when untracked memory exceeds this [default: 80MiB].
    #[arg(long, value_parser = flag(parse_size_toggle), value_name = "SIZE|off")]
    pub untracked_threshold: Option<Toggle<u64>>,

    /// Alert when RSS exceeds this multiple of the live heap [default: 1.5].
    #[arg(long, value_parser = flag(parse_ratio), value_name = "X|off")]
    pub ratio_threshold: Option<Toggle<f64>>,

    /// Alert when RSS exceeds this [default: 200MiB].
    #[arg(long, value_parser = flag(parse_size_toggle), value_name = "SIZE|off")]
    pub rss_threshold: Option<Toggle<u64>>,

    /// Alert when RSS grows faster than this (e.g. `5MB/min`) [default: 5MiB/min].
    #[arg(long, value_parser = flag(parse_rate_toggle), value_name = "RATE|off")]
    pub growth_threshold: Option<Toggle<f64>>,

    /// Alert when one consumer holds more than this [default: 100MiB].
    #[arg(long, value_parser = flag(parse_size_toggle), value_name = "SIZE|off")]
    pub consumer_size_threshold: Option<Toggle<u64>>,

    /// Alert when one consumer grows faster than this [default: 2MiB/min].
    #[arg(long, value_parser = flag(parse_rate_toggle), value_name = "RATE|off")]
    pub consumer_growth_threshold: Option<Toggle<f64>>,
}

/// A parser that says what it expected when a value does not fit.
type Parser<T> = fn(&str) -> Result<T, &'static str>;

/// Wraps a parser for clap.
fn flag<T>(parse: Parser<T>) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |text| parse(text).map_err(|expected| format!("expected {expected}"))
}

/// Reads `--config`, if given, and lays the flags over it.
pub fn load(args: &MonitorArgs) -> Result<MonitorConfig, ConfigError> {
    let text = match &args.config {
        Some(path) => fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?,
        None => String::new(),
    };
    let file = parse_file(&text).map_err(|err| match err {
        FileError::Syntax(source) => ConfigError::Syntax {
            path: args.config.clone().unwrap_or_default(),
            source,
        },
        FileError::Config(err) => err,
    })?;
    merge(&file, args)
}

/// Why a config file's text was refused.
#[derive(Debug)]
enum FileError {
    Syntax(toml::de::Error),
    Config(ConfigError),
}

/// The file's values by dotted key (`alerts.rss_ratio`), as text.
#[derive(Debug, Default)]
struct FileValues(BTreeMap<String, String>);

const KEYS: &[&str] = &[
    "monitor.snapshot_interval",
    "monitor.analysis_interval",
    "monitor.analysis_window",
    "monitor.memory_limit",
    "store.data_dir",
    "store.retention",
    "store.max_size",
    "output.events",
    "output.alert_file",
    "output.console",
    "webhook.url",
    "webhook.format",
    "webhook.timeout",
    "webhook.retries",
    "alerts.per_hour",
    "alerts.min_confidence",
    "alerts.untracked",
    "alerts.rss_ratio",
    "alerts.rss",
    "alerts.growth",
    "alerts.consumer_size",
    "alerts.consumer_growth",
];

fn parse_file(text: &str) -> Result<FileValues, FileError> {
    let table: toml::Table = toml::from_str(text).map_err(FileError::Syntax)?;
    let mut values = BTreeMap::new();
    for (section, inner) in table {
        let toml::Value::Table(inner) = inner else {
            return Err(unknown(&section));
        };
        for (name, value) in inner {
            let key = format!("{section}.{name}");
            if !KEYS.contains(&key.as_str()) {
                return Err(unknown(&key));
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(FileError::Config(ConfigError::Invalid {
                        key,
                        value: "a table or an array".into(),
                        expected: "a string, a number or a boolean",
                    }));
                }
            };
            values.insert(key, text);
        }
    }
    Ok(FileValues(values))
}

fn unknown(key: &str) -> FileError {
    FileError::Config(ConfigError::UnknownKey {
        key: key.to_owned(),
        known: KEYS
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

impl FileValues {
    /// The value of `key` read by `parse`, if the file has one.
    fn get<T>(&self, key: &str, parse: Parser<T>) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.0.get(key) else {
            return Ok(None);
        };
        parse(text)
            .map(Some)
            .map_err(|expected| ConfigError::Invalid {
                key: key.to_owned(),
                value: text.clone(),
                expected,
            })
    }
}

/// The flag if given, else the file's value, else `default`.
fn pick<T>(
    flag: Option<T>,
    file: &FileValues,
    key: &str,
    parse: Parser<T>,
    default: T,
) -> Result<T, ConfigError> {
    Ok(match flag {
        Some(value) => value,
        None => file.get(key, parse)?.unwrap_or(default),
    })
}

/// Like [`pick`], for a threshold that can be `off`.
fn pick_toggle<T: Copy>(
    flag: Option<Toggle<T>>,
    file: &FileValues,
    key: &str,
    parse: Parser<Toggle<T>>,
    default: Option<T>,
) -> Result<Option<T>, ConfigError> {
    let default = default.map_or(Toggle::Off, Toggle::On);
    pick(flag, file, key, parse, default).map(Toggle::into_option)
}

fn merge(file: &FileValues, args: &MonitorArgs) -> Result<MonitorConfig, ConfigError> {
    let defaults = MonitorConfig::default();
    let alerts = merge_alerts(file, args, &defaults.alerts)?;
    let config = MonitorConfig {
        snapshot_interval: pick(
            args.snapshot_interval,
            file,
            "monitor.snapshot_interval",
            parse_interval,
            defaults.snapshot_interval,
        )?,
        analysis_interval: pick(
            args.analysis_interval,
            file,
            "monitor.analysis_interval",
            parse_interval,
            defaults.analysis_interval,
        )?,
        analysis_window: pick(
            args.analysis_window,
            file,
            "monitor.analysis_window",
            parse_interval,
            defaults.analysis_window,
        )?,
        memory_limit: pick_toggle(
            args.memory_limit,
            file,
            "monitor.memory_limit",
            parse_size_toggle,
            None,
        )?,
        data_dir: pick(
            args.data_dir.clone().map(Some),
            file,
            "store.data_dir",
            parse_path,
            None,
        )?,
        retention: pick(
            args.retention,
            file,
            "store.retention",
            parse_interval,
            defaults.retention,
        )?,
        max_data_bytes: pick_toggle(
            args.max_data_size,
            file,
            "store.max_size",
            parse_size_toggle,
            None,
        )?,
        events: pick(
            args.events.clone().map(Some),
            file,
            "output.events",
            parse_path,
            None,
        )?,
        alert_file: pick(
            args.alert_file.clone().map(Some),
            file,
            "output.alert_file",
            parse_path,
            None,
        )?,
        console_alerts: pick(
            args.no_console_alerts.then_some(false),
            file,
            "output.console",
            parse_bool,
            true,
        )?,
        webhook: merge_webhook(file, args)?,
        alerts,
    };
    validate(config)
}

fn merge_alerts(
    file: &FileValues,
    args: &MonitorArgs,
    defaults: &AlertSettings,
) -> Result<AlertSettings, ConfigError> {
    Ok(AlertSettings {
        untracked_bytes: pick_toggle(
            args.untracked_threshold,
            file,
            "alerts.untracked",
            parse_size_toggle,
            defaults.untracked_bytes,
        )?,
        rss_heap_ratio: pick_toggle(
            args.ratio_threshold,
            file,
            "alerts.rss_ratio",
            parse_ratio,
            defaults.rss_heap_ratio,
        )?,
        rss_bytes: pick_toggle(
            args.rss_threshold,
            file,
            "alerts.rss",
            parse_size_toggle,
            defaults.rss_bytes,
        )?,
        growth_bytes_per_min: pick_toggle(
            args.growth_threshold,
            file,
            "alerts.growth",
            parse_rate_toggle,
            defaults.growth_bytes_per_min,
        )?,
        consumer_bytes: pick_toggle(
            args.consumer_size_threshold,
            file,
            "alerts.consumer_size",
            parse_size_toggle,
            defaults.consumer_bytes,
        )?,
        consumer_growth_bytes_per_min: pick_toggle(
            args.consumer_growth_threshold,
            file,
            "alerts.consumer_growth",
            parse_rate_toggle,
            defaults.consumer_growth_bytes_per_min,
        )?,
        min_confidence: pick(
            args.min_confidence,
            file,
            "alerts.min_confidence",
            parse_confidence,
            defaults.min_confidence,
        )?,
        per_hour: pick(
            args.alerts_per_hour,
            file,
            "alerts.per_hour",
            parse_count,
            defaults.per_hour,
        )?,
    })
}

fn merge_webhook(
    file: &FileValues,
    args: &MonitorArgs,
) -> Result<Option<WebhookConfig>, ConfigError> {
    let url = pick(
        args.webhook.clone().map(Some),
        file,
        "webhook.url",
        parse_url,
        None,
    )?;
    let Some(url) = url else {
        return Ok(None);
    };
    let defaults = WebhookConfig::new(url);
    Ok(Some(WebhookConfig {
        format: pick(
            args.webhook_format,
            file,
            "webhook.format",
            parse_format,
            defaults.format,
        )?,
        timeout: pick(
            args.webhook_timeout,
            file,
            "webhook.timeout",
            parse_interval,
            defaults.timeout,
        )?,
        retries: pick(
            args.webhook_retries,
            file,
            "webhook.retries",
            parse_count,
            defaults.retries,
        )?,
        ..defaults
    }))
}

fn validate(config: MonitorConfig) -> Result<MonitorConfig, ConfigError> {
    if config.analysis_interval < config.snapshot_interval {
        return Err(ConfigError::Order {
            key: "monitor.analysis_interval",
            value: format!("{:?}", config.analysis_interval),
            other: "monitor.snapshot_interval",
        });
    }
    if config.analysis_window < config.analysis_interval {
        return Err(ConfigError::Order {
            key: "monitor.analysis_window",
            value: format!("{:?}", config.analysis_window),
            other: "monitor.analysis_interval",
        });
    }
    Ok(config)
}

fn parse_interval(text: &str) -> Result<Duration, &'static str> {
    parse_span(text).map_err(|_| "a duration with a unit, like `30s`, `2m`, `12h` or `7d`")
}

fn parse_size_toggle(text: &str) -> Result<Toggle<u64>, &'static str> {
    if text.trim() == "off" {
        return Ok(Toggle::Off);
    }
    match parse_bytes(text) {
        Ok(bytes) if bytes > 0 => Ok(Toggle::On(bytes)),
        _ => Err("a size like `80MB`, `1.5GiB` or a number of bytes, or `off` to disable"),
    }
}

fn parse_rate_toggle(text: &str) -> Result<Toggle<f64>, &'static str> {
    if text.trim() == "off" {
        return Ok(Toggle::Off);
    }
    match parse_rate(text) {
        Ok(rate) if rate > 0.0 => Ok(Toggle::On(rate)),
        _ => Err("a rate like `5MB/min`, `100KiB/s` or `1GB/h`, or `off` to disable"),
    }
}

fn parse_ratio(text: &str) -> Result<Toggle<f64>, &'static str> {
    const EXPECTED: &str = "a number greater than 1, or `off` to disable";
    if text.trim() == "off" {
        return Ok(Toggle::Off);
    }
    match text.trim().parse::<f64>() {
        Ok(ratio) if ratio > 1.0 && ratio.is_finite() => Ok(Toggle::On(ratio)),
        _ => Err(EXPECTED),
    }
}

fn parse_confidence(text: &str) -> Result<u8, &'static str> {
    match text.trim().parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err("a whole number from 0 to 100"),
    }
}

fn parse_count(text: &str) -> Result<u32, &'static str> {
    text.trim().parse().map_err(|_| "a whole number, 0 or more")
}

fn parse_format(text: &str) -> Result<WebhookFormat, &'static str> {
    match text.trim() {
        "json" => Ok(WebhookFormat::Json),
        "slack" => Ok(WebhookFormat::Slack),
        _ => Err("`json` or `slack`"),
    }
}

fn parse_url(text: &str) -> Result<Option<String>, &'static str> {
    let url = text.trim();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(Some(url.to_owned()))
    } else {
        Err("an `http://` or `https://` URL")
    }
}

fn parse_path(text: &str) -> Result<Option<PathBuf>, &'static str> {
    if text.is_empty() {
        Err("a path")
    } else {
        Ok(Some(PathBuf::from(text)))
    }
}

fn parse_bool(text: &str) -> Result<bool, &'static str> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("`true` or `false`"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        monitor: MonitorArgs,
    }

    fn args(flags: &[&str]) -> MonitorArgs {
        let argv = std::iter::once("memtrace").chain(flags.iter().copied());
        Cli::try_parse_from(argv).expect("flags parse").monitor
    }

    fn from_text(text: &str, flags: &[&str]) -> Result<MonitorConfig, ConfigError> {
        let file = parse_file(text).map_err(|err| match err {
            FileError::Config(err) => err,
            FileError::Syntax(err) => panic!("bad TOML in a test: {err}"),
        })?;
        merge(&file, &args(flags))
    }

    #[test]
    fn monitoring_flags_sit_beside_the_tracing_flags_without_clashing() {
        <crate::cli::Cli as clap::CommandFactory>::command().debug_assert();
        let cli = crate::cli::Cli::try_parse_from([
            "memtrace",
            "--pid",
            "1",
            "--interval",
            "2s",
            "--events",
            "-",
        ])
        .expect("parses");
        assert_eq!(cli.trace.interval, Duration::from_secs(2));
        assert!(cli.trace.monitor.events.is_some());
    }

    #[test]
    fn no_file_and_no_flags_give_the_defaults() {
        assert_eq!(
            load(&MonitorArgs::default()).expect("loads"),
            MonitorConfig::default()
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let text =
            "[alerts]\nrss = \"1GB\"\nrss_ratio = 3\n[monitor]\nsnapshot_interval = \"10s\"\n";
        let config = from_text(text, &["--rss-threshold", "500MB"]).expect("valid");
        assert_eq!(config.alerts.rss_bytes, Some(500_000_000));
        assert_eq!(config.alerts.rss_heap_ratio, Some(3.0));
        assert_eq!(config.snapshot_interval, Duration::from_secs(10));
    }

    #[test]
    fn thresholds_turn_off_in_the_file_and_on_the_command_line() {
        let config = from_text(
            "[alerts]\nuntracked = \"off\"\n",
            &["--growth-threshold", "off"],
        )
        .expect("valid");
        assert_eq!(config.alerts.untracked_bytes, None);
        assert_eq!(config.alerts.growth_bytes_per_min, None);
        assert!(config.alerts.rss_bytes.is_some());
    }

    #[test]
    fn bad_value_names_its_key_and_what_it_takes() {
        let err = from_text("[alerts]\nrss_ratio = -1\n", &[]).expect_err("ratio below 1");
        assert_eq!(
            err.to_string(),
            "invalid `alerts.rss_ratio` = -1: expected a number greater than 1, or `off` to disable"
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = from_text("[alerts]\nrss_ration = 2\n", &[]).expect_err("typo");
        assert!(
            err.to_string()
                .starts_with("unknown key `alerts.rss_ration`"),
            "{err}"
        );
    }

    #[test]
    fn bad_flag_says_what_it_expected() {
        let argv = ["memtrace", "--min-confidence", "140"];
        let err = Cli::try_parse_from(argv).expect_err("over 100");
        assert!(
            err.to_string()
                .contains("expected a whole number from 0 to 100"),
            "{err}"
        );
    }

    #[test]
    fn every_flag_parses() {
        let config = from_text(
            "",
            &[
                "--snapshot-interval",
                "15s",
                "--analysis-interval",
                "1m",
                "--analysis-window",
                "1h",
                "--memory-limit",
                "4GiB",
                "--data-dir",
                "/tmp/d",
                "--retention",
                "3d",
                "--max-data-size",
                "100MB",
                "--events",
                "-",
                "--alert-file",
                "a.jsonl",
                "--webhook",
                "http://127.0.0.1:9/x",
                "--webhook-format",
                "slack",
                "--alerts-per-hour",
                "4",
                "--min-confidence",
                "80",
                "--untracked-threshold",
                "1GB",
                "--ratio-threshold",
                "2.5",
                "--rss-threshold",
                "off",
                "--growth-threshold",
                "1MB/s",
                "--consumer-size-threshold",
                "10MB",
                "--consumer-growth-threshold",
                "1MB/h",
                "--webhook-timeout",
                "2s",
                "--webhook-retries",
                "1",
                "--no-console-alerts",
            ],
        )
        .expect("valid");
        assert_eq!(config.analysis_window, Duration::from_hours(1));
        assert_eq!(config.memory_limit, Some(4 << 30));
        assert_eq!(config.retention, Duration::from_hours(3 * 24));
        assert_eq!(config.max_data_bytes, Some(100_000_000));
        assert_eq!(config.events.as_deref(), Some(std::path::Path::new("-")));
        let webhook = config.webhook.expect("a webhook was given");
        assert_eq!(webhook.format, WebhookFormat::Slack);
        assert_eq!(
            (webhook.timeout, webhook.retries),
            (Duration::from_secs(2), 1)
        );
        assert!(!config.console_alerts);
        assert_eq!(config.alerts.per_hour, 4);
        assert_eq!(config.alerts.rss_bytes, None);
        assert_eq!(config.alerts.growth_bytes_per_min, Some(60e6));
        assert_eq!(
            config.alerts.consumer_growth_bytes_per_min,
            Some(1e6 / 60.0)
        );
    }

    #[test]
    fn analysis_may_not_run_more_often_than_snapshots() {
        let err = from_text("", &["--snapshot-interval", "5m"]).expect_err("2m < 5m");
        assert!(
            err.to_string().contains("`monitor.analysis_interval`"),
            "{err}"
        );
    }
}
