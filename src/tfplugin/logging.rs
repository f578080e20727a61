//! Logs as hclog JSON lines on stderr. go-plugin parses such lines and re-logs
//! them at their own level, so `TF_LOG=debug` / `TF_LOG_PROVIDER=trace` show our
//! lines with the right level instead of everything as "debug".

use std::io::Write;

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

/// The level Terraform asked for: TF_LOG_PROVIDER wins over TF_LOG.
pub fn level_from_env() -> LevelFilter {
    let raw = std::env::var("TF_LOG_PROVIDER")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("TF_LOG").ok().filter(|v| !v.is_empty()));
    match raw.map(|v| v.to_ascii_lowercase()).as_deref() {
        Some("trace") | Some("json") => LevelFilter::TRACE,
        Some("debug") => LevelFilter::DEBUG,
        Some("info") => LevelFilter::INFO,
        Some("warn") => LevelFilter::WARN,
        Some("error") => LevelFilter::ERROR,
        Some("off") => LevelFilter::OFF,
        // Terraform discards plugin output without TF_LOG; warnings still cost nothing.
        _ => LevelFilter::WARN,
    }
}

/// Install the hclog layer as the global subscriber (once per process).
pub fn init() {
    let level = level_from_env();
    let layer = HclogLayer {
        all_targets: level == LevelFilter::TRACE,
    }
    .with_filter(level);
    let _ = tracing::subscriber::set_global_default(Registry::default().with(layer));
    // A panic is logged as one line, without a backtrace reaching the user.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        tracing::error!(%location, "provider panic: {message}");
    }));
}

pub struct HclogLayer {
    /// Log every crate's events, not only ours (TF_LOG_PROVIDER=trace).
    pub all_targets: bool,
}

struct JsonFields(Map<String, Json>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(key(field), Json::String(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(key(field), Json::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(key(field), Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(key(field), Json::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(key(field), Json::String(format!("{value:?}")));
    }
}

fn key(field: &Field) -> String {
    if field.name() == "message" {
        "@message".to_string()
    } else {
        field.name().to_string()
    }
}

/// One hclog JSON line for an event.
pub fn format_line(level: &Level, target: &str, fields: Map<String, Json>) -> String {
    let mut obj = fields;
    let level = match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    };
    obj.insert("@level".into(), Json::String(level.into()));
    obj.insert("@module".into(), Json::String(target.replace("::", ".")));
    obj.insert(
        "@timestamp".into(),
        Json::String(hclog_timestamp(time::OffsetDateTime::now_utc())),
    );
    obj.entry("@message")
        .or_insert_with(|| Json::String(String::new()));
    Json::Object(obj).to_string()
}

/// hclog's `2006-01-02T15:04:05.000000Z07:00`: go-plugin parses exactly six
/// fractional digits and re-logs the line raw (as debug) when it cannot.
fn hclog_timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // Our own lines at the requested level; the HTTP/2, TLS and SDK crates
        // below us only from warnings up unless TF_LOG_PROVIDER=trace.
        let meta = event.metadata();
        if !self.all_targets && !meta.target().starts_with("aienv") && *meta.level() > Level::WARN {
            return;
        }
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        let line = format_line(meta.level(), meta.target(), fields.0);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_hclog_json() {
        let mut fields = Map::new();
        fields.insert("@message".into(), Json::String("hello".into()));
        fields.insert("operation".into(), Json::String("RunInstances".into()));
        let line = format_line(&Level::DEBUG, "aienv::cloud", fields);
        let parsed: Json = serde_json::from_str(&line).unwrap_or(Json::Null);
        assert_eq!(parsed["@level"], "debug");
        assert_eq!(parsed["@message"], "hello");
        assert_eq!(parsed["operation"], "RunInstances");
        let ts = parsed["@timestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // 2026-12-01T16:41:26.121640Z: exactly six fractional digits.
        assert_eq!(ts.len(), 27, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        assert!(!line.contains('\n'));
    }
}
