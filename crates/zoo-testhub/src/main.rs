//! `zoo-testhub`: serves folders as hub repos on loopback for benchmarks and manual checks.
//!
//! `zoo-testhub [--port P] --repo ORG/NAME=DIR [--repo ...]` prints `endpoint http://127.0.0.1:PORT` on
//! stdout and serves until killed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use zoo_testhub::TestHub;

const USAGE: &str = "usage: zoo-testhub [--port P] --repo ORG/NAME=DIR [--repo ORG/NAME=DIR ...]";

struct Args {
    port: u16,
    repos: Vec<(String, PathBuf)>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut port = 0;
    let mut repos = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                let v = value("--port")?;
                port = v.parse().map_err(|_| format!("--port: not a port number: {v}"))?;
            }
            "--repo" => {
                let v = value("--repo")?;
                let (id, dir) = v.split_once('=').ok_or(format!("--repo: expected ORG/NAME=DIR, got {v}"))?;
                if id.is_empty() || dir.is_empty() {
                    return Err(format!("--repo: expected ORG/NAME=DIR, got {v}"));
                }
                repos.push((id.to_string(), PathBuf::from(dir)));
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if repos.is_empty() {
        return Err("at least one --repo is needed".into());
    }
    Ok(Some(Args { port, repos }))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\nhint: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let hub = match TestHub::start_on(args.port) {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{}: {e}\nhint: pick another --port, or 0", args.port);
            return ExitCode::from(1);
        }
    };
    for (id, dir) in &args.repos {
        match hub.add_dir(id, dir) {
            Ok(commit) => eprintln!("repo {id} = {} at commit {commit}", dir.display()),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}\nhint: --repo takes an existing folder", dir.display());
                return ExitCode::from(1);
            }
        }
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "endpoint {}", hub.endpoint()).and_then(|()| stdout.flush()).is_err() {
        return ExitCode::from(1);
    }
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_ports_and_repos() {
        let args = parse(&["--port", "8080", "--repo", "org/a=/tmp/a", "--repo=b=rel"]).unwrap().unwrap();
        assert_eq!(args.port, 8080);
        assert_eq!(
            args.repos,
            [("org/a".to_string(), PathBuf::from("/tmp/a")), ("b".to_string(), PathBuf::from("rel"))]
        );
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [&["--repo"][..], &["--repo", "noequals"], &["--port", "x", "--repo", "a=b"], &["--what"], &[]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
