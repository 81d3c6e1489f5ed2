//! A real MQTT broker for the tests: Debian's `mosquitto`, started on a free loopback port with a
//! config of its own in a temporary folder (and stopped when dropped); its own client,
//! `mosquitto_sub`, reads back what facerec published.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} is not installed: run `make setup-test` (it installs Debian's mosquitto)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    /// A broker that lets anyone in.
    pub fn start() -> Self {
        Self::start_with("allow_anonymous true\n")
    }

    /// A broker that only lets `user` in with `password`.
    pub fn with_login(user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwords");
        let status = Command::new(tool("mosquitto_passwd"))
            .args(["-b", "-c"])
            .arg(&file)
            .args([user, password])
            .status()
            .unwrap();
        assert!(status.success());
        let mut broker = Self::in_dir(
            dir,
            &format!("allow_anonymous false\npassword_file {}\n", file.display()),
        );
        broker.run();
        broker
    }

    fn start_with(settings: &str) -> Self {
        let mut broker = Self::in_dir(tempfile::tempdir().unwrap(), settings);
        broker.run();
        broker
    }

    fn in_dir(dir: tempfile::TempDir, settings: &str) -> Self {
        let port = free_port();
        let config = format!("listener {port} 127.0.0.1\n{settings}persistence false\n");
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        Self {
            port,
            dir,
            child: None,
        }
    }

    fn run(&mut self) {
        let child = Command::new(tool("mosquitto"))
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not listen on {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker (its retained messages go with it: `persistence false`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Publishes one message with `mosquitto_pub` (QoS 1).
    pub fn publish(&self, topic: &str, payload: &str) {
        let status = Command::new(tool("mosquitto_pub"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1"])
            .args(["-t", topic, "-m", payload])
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub to {topic}");
    }

    /// The retained messages on `topics` now: (topic, payload).
    pub fn retained(&self, topics: &[&str]) -> Vec<(String, String)> {
        let mut command = Command::new(tool("mosquitto_sub"));
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        for topic in topics {
            command.args(["-t", topic]);
        }
        let output = command
            .args(["--retained-only", "-W", "2", "-F", "%t\t%p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(t, p)| (t.to_owned(), p.to_owned()))
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message as `mosquitto_sub` printed it.
#[derive(Debug, Clone)]
pub struct Received {
    pub retained: bool,
    pub topic: String,
    pub payload: String,
    /// When it was read.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// `mosquitto_sub` on some topics, collecting what arrives.
pub struct Subscriber {
    child: Child,
    pub messages: Arc<Mutex<Vec<Received>>>,
}

impl Subscriber {
    pub fn start(broker: &Broker, topics: &[&str]) -> Self {
        let mut command = Command::new(tool("mosquitto_sub"));
        command.args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"]);
        for topic in topics {
            command.args(["-t", topic]);
        }
        let mut child = command
            .args(["-F", "%r\t%t\t%p"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&messages);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, '\t');
                let (Some(r), Some(t), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                into.lock().unwrap().push(Received {
                    retained: r == "1",
                    topic: t.to_owned(),
                    payload: p.to_owned(),
                    at: chrono::Utc::now(),
                });
            }
        });
        // Subscribed once it answers: give it a moment to connect.
        std::thread::sleep(Duration::from_millis(300));
        Self { child, messages }
    }

    /// The messages on `topic` once `done` holds for them (within 20 s).
    pub async fn wait_for(&self, topic: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..400 {
            let on: Vec<Received> = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.topic == topic)
                .cloned()
                .collect();
            if done(&on) {
                return on;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = self.messages.lock().unwrap().clone();
        panic!("never got what was expected on {topic}; received: {all:#?}");
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
