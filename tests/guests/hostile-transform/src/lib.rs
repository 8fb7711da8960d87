//! A transform that misbehaves on request. The step config's `do` chooses how:
//!
//! - `spin`: loops forever;
//! - `balloon`: allocates until memory runs out;
//! - `flood`: returns `mib` MiB of records;
//! - `panic`: panics;
//! - `snoop`: reports what of the host it can see (environment, arguments, files, sockets);
//! - `chatter`: logs `mib` MiB in 1 KiB lines, then behaves;
//! - `misindex`: rejects a record past the end of its batch;
//! - `echo`: behaves, returning its input.
//!
//! Standing in for the `filter` that evaluates condition steps (the host sends `when` and
//! `output = "positions"`), `when` chooses what positions to answer: `positions-backwards`
//! (the kept records in reverse order), `positions-repeated` (the first record twice),
//! `positions-past-the-end` (a record past the end of the batch), `positions-of-rejected` (a
//! record it also rejects).

use serde::Deserialize;
use weft_sdk::{Output, Record, Result, Transform, TransformInfo, json};

#[derive(Deserialize)]
pub struct Config {
    #[serde(rename = "do", default)]
    action: String,
    #[serde(default)]
    mib: usize,
    /// Set when the host calls it as a condition's filter.
    #[serde(default)]
    when: String,
}

fn positions(at: impl IntoIterator<Item = usize>) -> Vec<Record> {
    at.into_iter()
        .map(|i| record(json!({ "position": i })))
        .collect()
}

fn record(value: weft_sdk::Value) -> Record {
    match value {
        weft_sdk::Value::Object(map) => map,
        _ => Record::new(),
    }
}

fn snoop() -> Record {
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    let root = std::fs::read_dir("/")
        .map(|d| d.count())
        .map_err(|e| e.to_string());
    let cwd = std::fs::read_dir(".")
        .map(|d| d.count())
        .map_err(|e| e.to_string());
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map(|s| s.len())
        .map_err(|e| e.to_string());
    let socket = std::net::TcpStream::connect("127.0.0.1:5432")
        .map(|_| ())
        .map_err(|e| e.to_string());
    let lookup = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
        .map(|a| a.count())
        .map_err(|e| e.to_string());
    record(json!({
        "env": env,
        "args": args,
        "root_dir": format!("{root:?}"),
        "cwd": format!("{cwd:?}"),
        "passwd": format!("{passwd:?}"),
        "socket": format!("{socket:?}"),
        "dns": format!("{lookup:?}"),
    }))
}

pub struct Hostile;

impl Transform for Hostile {
    type Config = Config;

    fn describe() -> TransformInfo {
        TransformInfo::new("hostile-transform", "0.1.0")
            .description("Misbehaves on request, for tests.")
    }

    fn process(
        config: &Config,
        records: Vec<Record>,
        _lookup: Option<Vec<Record>>,
    ) -> Result<Output> {
        let n = records.len();
        match config.when.as_str() {
            "positions-backwards" => return Ok(Output::records(positions((0..n).rev()))),
            "positions-repeated" => return Ok(Output::records(positions([0, 0]))),
            "positions-past-the-end" => return Ok(Output::records(positions([n + 3]))),
            "positions-of-rejected" => {
                let mut output = Output::records(positions([0]));
                output.reject(0, "cannot be evaluated", None);
                return Ok(output);
            }
            _ => {}
        }
        match config.action.as_str() {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "balloon" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "flood" => {
                let chunk = "x".repeat(1024);
                let records = (0..config.mib * 1024)
                    .map(|i| record(json!({"i": i, "pad": chunk})))
                    .collect();
                Ok(Output::records(records))
            }
            "panic" => panic!("the hostile transform panicked on purpose"),
            "snoop" => Ok(Output::records(vec![snoop()])),
            "chatter" => {
                let line = "c".repeat(1024);
                for _ in 0..config.mib * 1024 {
                    weft_sdk::log::info(&line, &[]);
                }
                Ok(Output::records(records))
            }
            "misindex" => {
                let past_the_end = records.len() + 5;
                let mut output = Output::records(records);
                output.reject(past_the_end, "no such record", None);
                Ok(output)
            }
            _ => Ok(Output::records(records)),
        }
    }
}

weft_sdk::export_transform!(Hostile);
