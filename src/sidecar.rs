//! The access-proxy sidecar: its template (a partial PodSpec from the
//! policy directory) and the plan to inject it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Volume};
use serde::Deserialize;
use thiserror::Error;

/// Why a sidecar template is unusable.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read sidecar template {path}: {source}")]
    Read {
        /// The template file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("sidecar template {path}: {message}")]
    Parse {
        /// The template file.
        path: PathBuf,
        /// The parser's message with line and column.
        message: String,
    },
    /// Parsed, but would not make a valid pod.
    #[error("sidecar template {path}: {message}")]
    Invalid {
        /// The template file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A partial PodSpec: what injection adds to a pod.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarTemplate {
    /// Proxy containers (the first is "the proxy").
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Init containers that run before the pod's own.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Volumes the containers mount.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

impl SidecarTemplate {
    /// Reads a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses template text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TemplateError> {
        let options = serde_saphyr::options! { strict_booleans: true };
        let t: SidecarTemplate =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                TemplateError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                }
            })?;
        let invalid = |message: String| TemplateError::Invalid {
            path: path.to_owned(),
            message,
        };
        if t.containers.is_empty() {
            return Err(invalid(
                "containers: at least one container (the proxy) is required".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (field, list) in [
            ("containers", &t.containers),
            ("initContainers", &t.init_containers),
        ] {
            for (i, c) in list.iter().enumerate() {
                if c.name.is_empty() {
                    return Err(invalid(format!("{field}[{i}].name is required")));
                }
                if c.image.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid(format!(
                        "{field}[{i}] ({}): image is required",
                        c.name
                    )));
                }
                if !names.insert(c.name.clone()) {
                    return Err(invalid(format!(
                        "{field}[{i}]: container name {:?} is used twice",
                        c.name
                    )));
                }
            }
        }
        let mut volumes = std::collections::BTreeSet::new();
        for (i, v) in t.volumes.iter().enumerate() {
            if !volumes.insert(v.name.clone()) {
                return Err(invalid(format!(
                    "volumes[{i}]: volume name {:?} is used twice",
                    v.name
                )));
            }
        }
        Ok(t)
    }

    /// The proxy container's name: the first container of the template.
    pub fn proxy_name(&self) -> &str {
        self.containers
            .first()
            .map(|c| c.name.as_str())
            .unwrap_or("")
    }
}
