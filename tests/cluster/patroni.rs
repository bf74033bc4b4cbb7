//! Patroni's view of the cluster (REST `GET /cluster`) and the REST actions the tests use.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::http;
use super::wait::wait_for;
use super::Cluster;

/// One member as `GET /cluster` reports it.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    /// `leader`, `sync_standby`, `replica` (or `standby_leader`, `quorum_standby`).
    pub role: String,
    /// `running` for the leader; `streaming` for a healthy replica; else the PostgreSQL state.
    pub state: String,
    /// PostgreSQL port.
    pub port: u16,
}

/// A parsed `GET /cluster` answer.
#[derive(Clone, Debug)]
pub struct PatroniView {
    pub members: Vec<Member>,
}

impl PatroniView {
    pub fn from_json(json: &Value) -> Result<PatroniView> {
        let members = json["members"]
            .as_array()
            .ok_or_else(|| anyhow!("no members array in {json}"))?
            .iter()
            .map(|m| {
                let text = |key: &str| m[key].as_str().unwrap_or_default().to_string();
                Ok(Member {
                    name: text("name"),
                    role: text("role"),
                    state: text("state"),
                    port: m["port"]
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or_else(|| anyhow!("member without port: {m}"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PatroniView { members })
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The leader, if it is running.
    pub fn leader(&self) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.role == "leader" && m.state == "running")
    }

    /// Every member that is not the leader and is streaming.
    pub fn streaming_replicas(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| m.role != "leader" && m.state == "streaming")
            .collect()
    }

    /// Streaming members Patroni lists as synchronous standbys.
    pub fn sync_standbys(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| m.role == "sync_standby" && m.state == "streaming")
            .collect()
    }

    /// Streaming replicas that are not synchronous.
    pub fn async_replicas(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| m.role == "replica" && m.state == "streaming")
            .collect()
    }

    /// One running leader, two streaming replicas, exactly one of them a sync standby.
    pub fn is_healthy(&self) -> bool {
        self.leader().is_some()
            && self.streaming_replicas().len() == 2
            && self.sync_standbys().len() == 1
    }
}

impl Cluster {
    /// `GET /cluster` from the first node whose REST API answers.
    pub fn patroni_cluster(&self) -> Result<PatroniView> {
        let mut errors = Vec::new();
        for node in self.nodes() {
            match http::get_json(node.api_port, "/cluster") {
                Ok(json) => return PatroniView::from_json(&json),
                Err(e) => errors.push(format!("{}: {e:#}", node.name)),
            }
        }
        bail!("no Patroni REST API answered: {}", errors.join("; "))
    }

    /// Name of the running leader.
    pub fn leader(&self) -> Result<String> {
        let view = self.patroni_cluster()?;
        view.leader()
            .map(|m| m.name.clone())
            .ok_or_else(|| anyhow!("no running leader: {view:?}"))
    }

    /// Waits until `is_healthy` holds and returns that view.
    pub fn wait_healthy(&self, timeout: Duration) -> PatroniView {
        wait_for("a healthy Patroni cluster", timeout, || {
            self.patroni_cluster().map(|v| v.is_healthy().then_some(v))
        })
    }

    /// `POST /switchover` to the leader's REST API; Patroni answers once the switch is done
    /// (or gave up). Returns Patroni's message. With `to = None` Patroni picks the candidate.
    pub fn switchover(&self, to: Option<&str>) -> Result<String> {
        let leader = self.leader()?;
        let body = match to {
            Some(candidate) => serde_json::json!({"leader": leader, "candidate": candidate}),
            None => serde_json::json!({"leader": leader}),
        };
        let port = self.node(&leader).api_port;
        let resp = http::request(
            port,
            "POST",
            "/switchover",
            Some(&body.to_string()),
            Duration::from_secs(60),
        )?;
        if resp.status != 200 {
            bail!("switchover {body}: HTTP {}: {}", resp.status, resp.body);
        }
        Ok(resp.body)
    }

    /// Sets the node's `nosync` tag in its Patroni YAML and asks Patroni to reload it.
    pub fn set_nosync(&self, name: &str, nosync: bool) -> Result<()> {
        let path = self.dir().join(format!("{name}.yml"));
        let yaml = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let (from, to) = if nosync {
            ("nosync: false", "nosync: true")
        } else {
            ("nosync: true", "nosync: false")
        };
        let tags_line = yaml
            .lines()
            .find(|l| l.starts_with("tags:"))
            .ok_or_else(|| anyhow!("no tags line in {}", path.display()))?;
        let new_yaml = yaml.replace(tags_line, &tags_line.replace(from, to));
        std::fs::write(&path, new_yaml).with_context(|| path.display().to_string())?;
        let resp = http::request(
            self.node(name).api_port,
            "POST",
            "/reload",
            None,
            Duration::from_secs(10),
        )?;
        if !(200..300).contains(&resp.status) {
            bail!("reload {name}: HTTP {}: {}", resp.status, resp.body);
        }
        Ok(())
    }
}
