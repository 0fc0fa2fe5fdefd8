//! Subjects as Bevy assets: a subject definition RON file (see
//! [`subject`](crate::mvcustom::subject)) loaded with its reference images, masks, COLMAP
//! model and, when it has been trained, its weights file, all read through the asset source
//! so that editing any of them hot-reloads the subject.
//!
//! The loader claims the extension `subject.ron` (`teddy.subject.ron`); a definition with
//! another name loads by type: `asset_server.load::<SubjectAsset>("subjects/teddy/subject.ron")`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy::asset::io::{AssetReaderError, Reader};
use bevy::asset::{
    Asset, AssetLoadError, AssetLoader, AssetPath, AssetServer, Assets, Handle, LoadContext,
    LoadState, ReadAssetBytesError,
};
use bevy::ecs::system::SystemParam;
use bevy::prelude::Res;
use bevy::reflect::TypePath;
use candle_core::{Device, Tensor};

use super::read_text;
use crate::mvcustom::{Subject, SubjectDefinition, SubjectError};

/// The file extension the [`SubjectLoader`] claims.
pub const SUBJECT_EXTENSION: &str = "subject.ron";

/// A subject's weights file, read: every tensor (on the CPU) and the file's safetensors
/// metadata (what training recorded alongside, e.g. the pose-block placement).
#[derive(Clone, Debug, Default)]
pub struct SubjectWeightsData {
    /// The tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// The metadata entries (empty when the file has none).
    pub metadata: HashMap<String, String>,
}

impl SubjectWeightsData {
    /// Reads a safetensors file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, SubjectError> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| SubjectError::read(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| SubjectError::read(path, e))?;
        Ok(Self {
            tensors,
            metadata: header.metadata().clone().unwrap_or_default(),
        })
    }
}

/// A subject definition with everything it names, loaded: the [`Subject`] (references,
/// masks, cameras, token, class word) and its learned weights when the weights file exists.
///
/// Paths inside (the subject's `path`, `weights_path`, its references' paths) are relative
/// to the asset source's root, like the asset's own path; the weights tensors are checked
/// against a model only when a generation uses them.
#[derive(Asset, TypePath, Clone)]
pub struct SubjectAsset {
    path: AssetPath<'static>,
    subject: Arc<Subject>,
    weights: Option<Arc<SubjectWeightsData>>,
}

impl std::fmt::Debug for SubjectAsset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectAsset")
            .field("path", &self.path)
            .field("token", &self.subject.token)
            .field("references", &self.subject.references.len())
            .field("weights", &self.weights.as_ref().map(|w| w.tensors.len()))
            .finish()
    }
}

impl SubjectAsset {
    /// A subject asset from parts already loaded (an app building subjects in code);
    /// `path` is what it is known by.
    pub fn new(
        path: AssetPath<'static>,
        subject: Subject,
        weights: Option<SubjectWeightsData>,
    ) -> Self {
        Self {
            path,
            subject: Arc::new(subject),
            weights: weights.map(Arc::new),
        }
    }

    /// The definition's asset path.
    pub fn path(&self) -> &AssetPath<'static> {
        &self.path
    }

    /// The subject: token, class word, references with their cameras.
    pub fn subject(&self) -> &Arc<Subject> {
        &self.subject
    }

    /// The learned weights (the weights file's tensors, on the CPU, and its metadata), or
    /// `None` when the subject has not been trained yet (no weights file).
    pub fn weights(&self) -> Option<&Arc<SubjectWeightsData>> {
        self.weights.as_ref()
    }
}

/// Loads [`SubjectAsset`]s from subject definition RON files (registered by the plugin).
#[derive(TypePath, Clone, Copy, Debug, Default)]
pub struct SubjectLoader;

impl AssetLoader for SubjectLoader {
    type Asset = SubjectAsset;
    type Settings = ();
    type Error = SubjectError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        load_context: &mut LoadContext<'_>,
    ) -> Result<SubjectAsset, SubjectError> {
        let asset_path = load_context.path().clone_owned();
        let path = asset_path.path().to_path_buf();
        let text = read_text(reader, &path).await?;
        let definition = SubjectDefinition::parse(&text, &path)?;
        let folder = path.parent().unwrap_or(Path::new(""));
        let mut files = HashMap::new();
        for file in definition.referenced_files(folder) {
            let bytes = load_context
                .read_asset_bytes(sibling(&asset_path, &file))
                .await
                .map_err(|e| SubjectError::read(&file, e))?;
            files.insert(file, bytes);
        }
        let weights_path = definition.weights_path(&path);
        let weights = match load_context
            .read_asset_bytes(sibling(&asset_path, &weights_path))
            .await
        {
            Ok(bytes) => Some(Arc::new(SubjectWeightsData::from_bytes(
                &bytes,
                &weights_path,
            )?)),
            Err(ReadAssetBytesError::AssetReaderError(AssetReaderError::NotFound(_))) => None,
            Err(e) => return Err(SubjectError::read(&weights_path, e)),
        };
        let subject = Subject::from_definition_with(definition, &path, &mut |file| {
            files.get(file).cloned().ok_or_else(|| {
                SubjectError::read(file, "not among the files the definition names (not read)")
            })
        })?;
        Ok(SubjectAsset {
            path: asset_path,
            subject: Arc::new(subject),
            weights,
        })
    }

    fn extensions(&self) -> &[&str] {
        &[SUBJECT_EXTENSION]
    }
}

/// A demo subject shipped in the crate's `assets/subjects/<name>/<name>.subject.ron`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DemoSubject {
    /// Its folder's name.
    pub name: String,
    /// The asset path of its definition (`subjects/<name>/<name>.subject.ron`), for an app whose
    /// asset folder is the crate's `assets/` (the default when run by cargo from the crate).
    pub asset_path: String,
}

/// The demo subjects in [`demo_subjects_dir`](crate::mvcustom::demo_subjects_dir), by name
/// (none when the folder does not exist).
pub fn demo_subjects() -> Vec<DemoSubject> {
    let Ok(folders) = std::fs::read_dir(crate::mvcustom::demo_subjects_dir()) else {
        return Vec::new();
    };
    let mut subjects: Vec<DemoSubject> = folders
        .filter_map(Result::ok)
        .filter_map(|folder| {
            let name = folder.file_name().to_string_lossy().into_owned();
            let file = format!("{name}.{SUBJECT_EXTENSION}");
            folder.path().join(&file).is_file().then_some((name, file))
        })
        .map(|(name, file)| {
            let asset_path = format!("subjects/{name}/{file}");
            DemoSubject { name, asset_path }
        })
        .collect();
    subjects.sort();
    subjects
}

/// Where a subject handle stands, for a system about to use it.
pub(crate) enum SubjectLookup<'a> {
    /// Loaded (and not reloading).
    Loaded(&'a SubjectAsset),
    /// Loading or reloading: wait.
    Loading,
    /// The load failed: the loader's error.
    Failed(String),
    /// Not loading and not there (removed, or added to no collection).
    Missing,
}

/// The subject assets and the server loading them, when the app has them.
#[derive(SystemParam)]
pub(crate) struct SubjectAssets<'w> {
    subjects: Option<Res<'w, Assets<SubjectAsset>>>,
    server: Option<Res<'w, AssetServer>>,
}

impl SubjectAssets<'_> {
    /// Where `handle` stands: a failed (re)load wins over an older loaded version, a reload
    /// in progress is waited for.
    pub(crate) fn lookup(&self, handle: &Handle<SubjectAsset>) -> SubjectLookup<'_> {
        match self.server.as_ref().map(|server| server.load_state(handle)) {
            Some(LoadState::Failed(error)) => {
                return SubjectLookup::Failed(load_error_text(&error));
            }
            Some(LoadState::Loading) => return SubjectLookup::Loading,
            _ => {}
        }
        match self.subjects.as_ref().and_then(|s| s.get(handle)) {
            Some(subject) => SubjectLookup::Loaded(subject),
            None => SubjectLookup::Missing,
        }
    }

    /// Reloads the subject's files (after training wrote its weights), when it came from
    /// the asset server.
    pub(crate) fn reload(&self, subject: &SubjectAsset) {
        if let Some(server) = &self.server {
            server.reload(subject.path().clone());
        }
    }
}

/// The text of a failed load: the loader's own error (which names the file and field) when
/// the loader failed, else the asset server's.
pub(crate) fn load_error_text(error: &AssetLoadError) -> String {
    match error {
        AssetLoadError::AssetLoaderError(e) => e.error().to_string(),
        other => other.to_string(),
    }
}

/// A display name of a subject handle: its asset path, else its id.
pub(crate) fn handle_name(handle: &Handle<SubjectAsset>) -> String {
    handle
        .path()
        .map_or_else(|| format!("{:?}", handle.id()), ToString::to_string)
}

/// The asset path of `file` (a path relative to the source's root) in the source of `of`.
fn sibling(of: &AssetPath<'static>, file: &Path) -> AssetPath<'static> {
    AssetPath::from_path_buf(PathBuf::from(file)).with_source(of.source().clone_owned())
}
