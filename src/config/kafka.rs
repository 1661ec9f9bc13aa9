//! The Kafka group: brokers, topic, and the TLS and SASL flags as
//! librdkafka properties (the password kept apart as a secret).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Kafka (the distributed profile).
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port,…`): the distributed profile.
    /// `serve` then runs the relay and Kafka-fed projectors; `project`
    /// consumes Kafka. Needs a Postgres store.
    #[arg(long, env = "SHOPSTREAM_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// The events topic.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_TOPIC",
        default_value = "shopstream.events"
    )]
    pub kafka_topic: String,

    /// Partitions when the relay creates the topic (the most projector
    /// processes that share the work).
    #[arg(long, env = "SHOPSTREAM_KAFKA_PARTITIONS", default_value_t = 6)]
    pub kafka_partitions: i32,

    /// Replication factor when the relay creates the topic (3 in production).
    #[arg(long, env = "SHOPSTREAM_KAFKA_REPLICATION_FACTOR", default_value_t = 1)]
    pub kafka_replication_factor: i32,

    /// Consumer groups are `<prefix>.<projection>`.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_GROUP_PREFIX",
        default_value = "shopstream"
    )]
    pub kafka_group_prefix: String,

    /// Consumer session timeout: how soon a dead projector's partitions move.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub kafka_session_timeout_ms: u32,

    /// How clients talk to Kafka: `plaintext`, `ssl` (TLS), `sasl_plaintext`
    /// or `sasl_ssl` (SASL over TLS; what managed Kafka services want).
    #[arg(long, env = "SHOPSTREAM_KAFKA_SECURITY_PROTOCOL", default_value = "plaintext",
          value_parser = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"])]
    pub kafka_security_protocol: String,

    /// PEM file of the CA(s) that signed the brokers' certificates
    /// [default: the system's trust store].
    #[arg(long, env = "SHOPSTREAM_KAFKA_CA")]
    pub kafka_ca: Option<PathBuf>,

    /// PEM client certificate, for brokers that require mutual TLS.
    #[arg(long, env = "SHOPSTREAM_KAFKA_CERT", requires = "kafka_key")]
    pub kafka_cert: Option<PathBuf>,

    /// PEM private key of --kafka-cert.
    #[arg(long, env = "SHOPSTREAM_KAFKA_KEY", requires = "kafka_cert")]
    pub kafka_key: Option<PathBuf>,

    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[arg(long, env = "SHOPSTREAM_KAFKA_SASL_MECHANISM",
          value_parser = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])]
    pub kafka_sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(long, env = "SHOPSTREAM_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,

    /// File holding the SASL password (or set SHOPSTREAM_KAFKA_SASL_PASSWORD;
    /// never a flag, so it stays out of `ps` and shell history).
    #[arg(long, env = "SHOPSTREAM_KAFKA_SASL_PASSWORD_FILE")]
    pub kafka_sasl_password_file: Option<PathBuf>,

    /// Extra librdkafka property, `key=value` (repeatable; in the
    /// environment, `;`-separated; e.g. `security.protocol=SASL_SSL`).
    #[arg(
        long = "kafka-option",
        env = "SHOPSTREAM_KAFKA_OPTIONS",
        value_delimiter = ';'
    )]
    pub kafka_options: Vec<String>,
}

impl KafkaArgs {
    /// The Kafka settings, when the distributed profile is configured
    /// (`--kafka-brokers`); the store at `database_url` must be Postgres.
    ///
    /// # Errors
    /// A malformed `--kafka-option`, out-of-range numbers, or a store that
    /// is not Postgres.
    pub fn settings(
        &self,
        database_url: &str,
    ) -> anyhow::Result<Option<relay::kafka::KafkaSettings>> {
        let Some(brokers) = self.kafka_brokers.as_ref().filter(|b| !b.trim().is_empty()) else {
            return Ok(None);
        };
        anyhow::ensure!(
            database_url.starts_with("postgres"),
            "the Kafka profile needs a Postgres store: set --database-url postgres://…"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.kafka_partitions),
            "--kafka-partitions must be between 1 and 10000"
        );
        anyhow::ensure!(
            (1..=32).contains(&self.kafka_replication_factor),
            "--kafka-replication-factor must be between 1 and 32"
        );
        anyhow::ensure!(
            (1_000..=600_000).contains(&self.kafka_session_timeout_ms),
            "--kafka-session-timeout-ms must be between 1000 and 600000"
        );
        let (mut extra, secrets) = self.kafka_security()?;
        for option in &self.kafka_options {
            let (k, v) = option
                .split_once('=')
                .with_context(|| format!("--kafka-option '{option}' is not key=value"))?;
            extra.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Some(relay::kafka::KafkaSettings {
            brokers: brokers.trim().to_string(),
            topic: self.kafka_topic.clone(),
            partitions: self.kafka_partitions,
            replication_factor: self.kafka_replication_factor,
            group_prefix: self.kafka_group_prefix.clone(),
            session_timeout_ms: self.kafka_session_timeout_ms,
            extra,
            secrets,
        }))
    }

    /// The TLS and SASL flags as librdkafka properties (secrets apart).
    ///
    /// # Errors
    /// A SASL mechanism without the user or password it needs, an unreadable
    /// password file, or a file flag naming no file.
    #[allow(clippy::type_complexity)]
    fn kafka_security(
        &self,
    ) -> anyhow::Result<(
        Vec<(String, String)>,
        Vec<(String, relay::kafka::SecretValue)>,
    )> {
        let mut extra = vec![(
            "security.protocol".to_string(),
            self.kafka_security_protocol.clone(),
        )];
        let files = [
            ("ssl.ca.location", &self.kafka_ca, "--kafka-ca"),
            ("ssl.certificate.location", &self.kafka_cert, "--kafka-cert"),
            ("ssl.key.location", &self.kafka_key, "--kafka-key"),
        ];
        for (property, path, flag) in files {
            if let Some(path) = path {
                anyhow::ensure!(path.is_file(), "{flag} {}: no such file", path.display());
                extra.push((property.to_string(), path.display().to_string()));
            }
        }
        let mut secrets = Vec::new();
        if let Some(mechanism) = &self.kafka_sasl_mechanism {
            anyhow::ensure!(
                self.kafka_security_protocol.starts_with("sasl_"),
                "--kafka-sasl-mechanism needs --kafka-security-protocol sasl_ssl (or sasl_plaintext)"
            );
            let user = self
                .kafka_sasl_username
                .clone()
                .context("--kafka-sasl-mechanism needs --kafka-sasl-username")?;
            let password = match (&self.kafka_sasl_password_file, std::env::var("SHOPSTREAM_KAFKA_SASL_PASSWORD")) {
                (Some(file), _) => std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the SASL password file {}", file.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
                (None, Ok(p)) if !p.is_empty() => p,
                _ => anyhow::bail!(
                    "--kafka-sasl-mechanism needs a password: --kafka-sasl-password-file or SHOPSTREAM_KAFKA_SASL_PASSWORD"
                ),
            };
            extra.push(("sasl.mechanism".to_string(), mechanism.clone()));
            extra.push(("sasl.username".to_string(), user));
            secrets.push((
                "sasl.password".to_string(),
                relay::kafka::SecretValue(password),
            ));
        }
        Ok((extra, secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    fn kafka(args: &[&str]) -> anyhow::Result<Option<relay::kafka::KafkaSettings>> {
        use clap::Parser;
        let mut all = vec!["shopstream", "--kafka-brokers", "k:9093"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all)?
            .kafka
            .settings("postgres://db/x")
    }

    #[test]
    fn kafka_tls_and_sasl_flags_become_client_properties_and_the_password_stays_secret() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret-pass\n").unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "pem").unwrap();
        let k = kafka(&[
            "--kafka-security-protocol",
            "sasl_ssl",
            "--kafka-ca",
            ca.to_str().unwrap(),
            "--kafka-sasl-mechanism",
            "SCRAM-SHA-512",
            "--kafka-sasl-username",
            "shop",
            "--kafka-sasl-password-file",
            password.to_str().unwrap(),
            "--kafka-option",
            "ssl.endpoint.identification.algorithm=none",
        ])
        .unwrap()
        .unwrap();
        let has = |k2: &str, v: &str| k.extra.iter().any(|(a, b)| a == k2 && b == v);
        assert!(has("security.protocol", "sasl_ssl"));
        assert!(has("ssl.ca.location", ca.to_str().unwrap()));
        assert!(has("sasl.mechanism", "SCRAM-SHA-512"));
        assert!(has("sasl.username", "shop"));
        assert!(has("ssl.endpoint.identification.algorithm", "none"));
        assert_eq!(k.secrets[0].0, "sasl.password");
        assert_eq!(k.secrets[0].1 .0, "s3cret-pass");
        assert!(
            !format!("{k:?}").contains("s3cret"),
            "the password leaked into Debug output"
        );
        // The properties reach librdkafka, which reads the CA file at once.
        let refused = k
            .client_config()
            .create::<rdkafka::producer::BaseProducer>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("ssl.ca.location"), "{refused}");
    }

    #[test]
    fn kafka_security_flags_are_checked() {
        let missing_user = kafka(&[
            "--kafka-security-protocol",
            "sasl_ssl",
            "--kafka-sasl-mechanism",
            "PLAIN",
        ]);
        assert!(missing_user.unwrap_err().to_string().contains("username"));
        let wrong_protocol = kafka(&[
            "--kafka-security-protocol",
            "ssl",
            "--kafka-sasl-mechanism",
            "PLAIN",
        ]);
        assert!(wrong_protocol.unwrap_err().to_string().contains("sasl_ssl"));
        let no_file = kafka(&[
            "--kafka-security-protocol",
            "ssl",
            "--kafka-ca",
            "/nonexistent/ca.pem",
        ]);
        assert!(no_file.unwrap_err().to_string().contains("no such file"));
        assert!(kafka(&["--kafka-security-protocol", "tls"]).is_err());
    }
}
