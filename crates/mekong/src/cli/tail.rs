//! `mekong tail`: read a topic through the gateway's `SubscribeService.Consume` and print each
//! record as one JSON line on stdout, acknowledging it once it has been written out.
//!
//! Records that arrive together are printed together, then stdout is flushed and one `Ack` carries
//! all their cursors; so an acknowledged record has always reached stdout (at least once). Ctrl-C
//! acknowledges what was printed, closes the request stream and exits 0. A gRPC error prints
//! `error: <CODE>: <message>` on stderr and exits 1 (refused: credentials, permission, an unknown
//! topic) or 3 (the hub cannot be reached).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use base64::Engine;
use clap::Args;
use futures::FutureExt;
use futures::channel::mpsc;
use mekong_proto::v1::subscribe_service_client::SubscribeServiceClient;
use mekong_proto::v1::{
    Ack, ConsumeRequest, Cursor, DeliveredRecord, StartFrom, Subscription, consume_request,
};
use serde::Serialize;
use serde_json::value::RawValue;

use super::Failure;
use super::remote::{Remote, refused};

/// Most records acknowledged by one `Ack`, when records keep arriving without a pause.
const ACK_BATCH: usize = 64;
/// After Ctrl-C, how long the server has to take the last acks and end the stream.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Topic to read (it must match one of the client's `subscribe` patterns).
    topic: String,
    /// Consumer group: streams of one group share the partitions and one committed position
    /// [server default: "default"].
    #[arg(long)]
    group: Option<String>,
    /// Where to start when the group has no committed position yet: earliest, latest, or a time
    /// (RFC 3339, e.g. 2026-11-28T09:00:00+07:00; without an offset: UTC).
    #[arg(long, value_name = "earliest|latest|TIME", default_value = "earliest", value_parser = parse_start)]
    from: Start,
    /// Only records of this type (repeatable); filtered records count as acknowledged.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    #[command(flatten)]
    remote: Remote,
    /// Records delivered and not yet acknowledged, at most (1..=4096) [server default: 256].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_in_flight: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
enum Start {
    Earliest,
    Latest,
    /// Milliseconds since the epoch.
    Time(i64),
}

fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        _ => parse_time_ms(s).map(Start::Time).map_err(|e| {
            format!("expected earliest, latest or an RFC 3339 time such as 2026-11-28T09:00:00+07:00 ({e})")
        }),
    }
}

/// An RFC 3339 time in milliseconds since the epoch; without a zone, UTC.
fn parse_time_ms(s: &str) -> Result<i64, String> {
    mekong_core::times::rfc3339_ms(s)
        .or_else(|| mekong_core::times::naive_ms(s))
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time"))
}

/// How the loop over delivered records ended.
enum Stop {
    /// Ctrl-C: acknowledge what was printed, close, exit 0.
    Interrupted,
    /// The server ended the stream without an error.
    Ended,
    /// Nobody reads stdout any more (`mekong tail ... | head`): what was not flushed is not
    /// acknowledged.
    OutputClosed,
}

pub async fn run(args: TailArgs) -> Result<u8, Failure> {
    let channel = args.remote.connect().await?;

    let (start_from, start_time_ms) = match args.from {
        Start::Earliest => (StartFrom::Earliest, 0),
        Start::Latest => (StartFrom::Latest, 0),
        Start::Time(ms) => (StartFrom::Time, ms),
    };
    let (requests, request_stream) = mpsc::unbounded();
    send(
        &requests,
        consume_request::Request::Subscribe(Subscription {
            topic: args.topic,
            group: args.group.unwrap_or_default(),
            start_from: start_from.into(),
            start_time_ms,
            record_types: args.types,
            max_in_flight: args.max_in_flight.unwrap_or(0),
        }),
    );
    let request = tonic::Request::new(request_stream);
    let mut client = SubscribeServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut inbound = client.consume(request).await.map_err(refused)?.into_inner();

    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut printed: Vec<Cursor> = Vec::with_capacity(ACK_BATCH);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let stop = loop {
        // Print what has already arrived; when nothing more is ready, flush and acknowledge it.
        let next = match inbound.message().now_or_never() {
            Some(next) if (&mut ctrl_c).now_or_never().is_none() => next,
            Some(_) => break Stop::Interrupted,
            None => {
                if let Err(e) = acknowledge(&mut out, &requests, &mut printed) {
                    break output_error(e)?;
                }
                tokio::select! {
                    biased;
                    _ = &mut ctrl_c => break Stop::Interrupted,
                    next = inbound.message() => next,
                }
            }
        };
        match next {
            Ok(Some(record)) => {
                if let Err(e) = print(&mut out, &record) {
                    break output_error(e)?;
                }
                printed.push(record.cursor.unwrap_or_default());
                if printed.len() >= ACK_BATCH
                    && let Err(e) = acknowledge(&mut out, &requests, &mut printed)
                {
                    break output_error(e)?;
                }
            }
            Ok(None) => break Stop::Ended,
            Err(status) => {
                let _ = out.flush();
                return Err(refused(status));
            }
        }
    };

    match stop {
        Stop::Interrupted => {
            if let Err(e) = acknowledge(&mut out, &requests, &mut printed) {
                output_error(e)?;
            }
        }
        Stop::Ended => {
            let _ = acknowledge(&mut out, &requests, &mut printed);
            return Ok(Failure::OK);
        }
        Stop::OutputClosed => {}
    }
    // End the request stream, then give the server a moment to take the last acks and end its
    // side. Records arriving meanwhile are neither printed nor acknowledged: they come again.
    drop(requests);
    tokio::select! {
        _ = async { while let Ok(Some(_)) = inbound.message().await {} } => {}
        _ = tokio::time::sleep(CLOSE_GRACE) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Failure::OK)
}

fn send(requests: &mpsc::UnboundedSender<ConsumeRequest>, request: consume_request::Request) {
    // Fails only once the call is over; the response stream then reports why.
    let _ = requests.unbounded_send(ConsumeRequest {
        request: Some(request),
    });
}

/// Flushes stdout, then acknowledges every record printed so far.
fn acknowledge(
    out: &mut impl Write,
    requests: &mpsc::UnboundedSender<ConsumeRequest>,
    printed: &mut Vec<Cursor>,
) -> io::Result<()> {
    if printed.is_empty() {
        return Ok(());
    }
    out.flush()?;
    let cursors = std::mem::replace(printed, Vec::with_capacity(ACK_BATCH));
    send(requests, consume_request::Request::Ack(Ack { cursors }));
    Ok(())
}

fn output_error(e: io::Error) -> Result<Stop, Failure> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(Stop::OutputClosed)
    } else {
        Err(Failure::other(format!("cannot write to stdout: {e}")))
    }
}

/// One output line.
#[derive(Serialize)]
struct Line<'a> {
    record_id: &'a str,
    record_type: &'a str,
    source: &'a str,
    time: &'a str,
    key: std::borrow::Cow<'a, str>,
    cursor: Option<CursorLine<'a>>,
    attributes: BTreeMap<&'a str, &'a str>,
    /// The payload, when it is JSON: its text as it is in Kafka (on one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    /// The payload, when it is UTF-8 text but not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_text: Option<&'a str>,
    /// The payload, when it is neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

#[derive(Serialize)]
struct CursorLine<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

fn print(out: &mut impl Write, record: &DeliveredRecord) -> io::Result<()> {
    let payload = &record.payload[..];
    let compacted: Option<Box<RawValue>>;
    let (data, data_text, data_base64) = match serde_json::from_slice::<&RawValue>(payload) {
        // Whitespace between tokens is all a payload may have to lose to fit on one line.
        Ok(raw) if raw.get().contains(['\n', '\r']) => {
            compacted = RawValue::from_string(compact(raw.get())).ok();
            (compacted.as_deref(), None, None)
        }
        Ok(raw) => (Some(raw), None, None),
        Err(_) => match std::str::from_utf8(payload) {
            Ok(text) => (None, Some(text), None),
            Err(_) => (
                None,
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(payload)),
            ),
        },
    };
    let line = Line {
        record_id: &record.record_id,
        record_type: &record.record_type,
        source: &record.source,
        time: &record.time,
        key: String::from_utf8_lossy(&record.key),
        cursor: record.cursor.as_ref().map(|c| CursorLine {
            topic: &c.topic,
            partition: c.partition,
            offset: c.offset,
        }),
        attributes: record
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        data,
        data_text,
        data_base64,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Valid JSON text without the whitespace between its tokens; everything else is kept as is.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let utc = parse_time_ms("2026-11-28T02:00:00Z").unwrap();
        assert_eq!(parse_time_ms("2026-11-28T09:00:00+07:00").unwrap(), utc);
        assert_eq!(parse_time_ms("2026-11-28 02:00:00").unwrap(), utc);
        assert_eq!(parse_time_ms("2026-11-27T21:30:00-04:30").unwrap(), utc);
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn compacts_outside_strings_only() {
        assert_eq!(
            compact("{\n  \"a b\": [1.50, \"x\\\" y\"],\r\n \"c\" : {} }"),
            "{\"a b\":[1.50,\"x\\\" y\"],\"c\":{}}"
        );
    }
}
