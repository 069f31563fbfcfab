//! The disk states a power loss can leave, built from a log of the store's writes.
//!
//! The model of the disk (what ext4 with `data=ordered` promises, and no more):
//! - A write reaches the disk only by its file's `fsync`/`fdatasync`, or at any moment before
//!   it by writeback. Writeback writes a 512-byte sector as the page held it at some moment:
//!   after a power loss each sector holds its synced content or its content after one of the
//!   unsynced writes that touched it, chosen for each sector on its own. So unsynced writes may
//!   be dropped, land in any order across sectors, and be torn at sector boundaries.
//! - Names (creations, renames, removals) are durable once their directory is synced. Before
//!   that, the journal commits them in order: a power loss keeps a prefix of them.
//! - Directories are never lost (the store syncs a directory's parent after creating it).
//! - A file's length is the longest of its synced length and the ends of the sectors that
//!   landed; what no write reached reads as zeros (`data=ordered` never shows stale blocks).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use resilience::__private::io::IoOp;

const SECTOR: u64 = 512;

/// One file's bytes: synced, and the unsynced writes since, oldest first.
#[derive(Debug, Clone, Default)]
struct Inode {
    synced: Vec<u8>,
    unsynced: Vec<(u64, Vec<u8>)>,
}

impl Inode {
    /// The bytes the file holds now (what a read returns).
    fn current(&self) -> Vec<u8> {
        let mut bytes = self.synced.clone();
        for (offset, data) in &self.unsynced {
            apply(&mut bytes, *offset, data);
        }
        bytes
    }

    /// For each sector an unsynced write touched: its content after each such write, oldest
    /// first, and the file's length then.
    fn sector_versions(&self) -> BTreeMap<u64, Vec<(Vec<u8>, u64)>> {
        let mut bytes = self.synced.clone();
        let mut versions: BTreeMap<u64, Vec<(Vec<u8>, u64)>> = BTreeMap::new();
        for (offset, data) in &self.unsynced {
            apply(&mut bytes, *offset, data);
            let end = offset + data.len() as u64;
            let mut sector = offset / SECTOR;
            while sector * SECTOR < end {
                let from = (sector * SECTOR) as usize;
                let to = (from + SECTOR as usize).min(bytes.len());
                versions.entry(sector).or_default().push((bytes[from..to].to_vec(), to as u64));
                sector += 1;
            }
        }
        versions
    }
}

fn apply(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[offset as usize..end].copy_from_slice(data);
}

/// A change of names, by path relative to the explored tree's root.
#[derive(Debug, Clone)]
enum NameOp {
    Link(PathBuf, u64),
    Rename(PathBuf, PathBuf),
    Unlink(PathBuf),
}

impl NameOp {
    /// The directory whose sync makes it durable.
    fn dir(&self) -> &Path {
        match self {
            NameOp::Link(path, _) | NameOp::Rename(_, path) | NameOp::Unlink(path) => {
                path.parent().unwrap_or(Path::new(""))
            }
        }
    }
}

fn apply_name_op(names: &mut BTreeMap<PathBuf, u64>, op: &NameOp) {
    match op {
        NameOp::Link(name, ino) => {
            names.insert(name.clone(), *ino);
        }
        NameOp::Rename(from, to) => {
            if let Some(ino) = names.remove(from) {
                names.insert(to.clone(), ino);
            }
        }
        NameOp::Unlink(name) => {
            names.remove(name);
        }
    }
}

/// The files under one directory (the explored tree) as the log has left them so far.
#[derive(Debug, Clone)]
pub struct Disk {
    root: PathBuf,
    inodes: HashMap<u64, Inode>,
    synced_names: BTreeMap<PathBuf, u64>,
    names: BTreeMap<PathBuf, u64>,
    /// Name changes whose directory was not synced since, oldest first.
    unsynced_names: Vec<NameOp>,
    /// Inode numbers the model makes up, for files it did not see created.
    next_made_up: u64,
}

/// One disk state a power loss can leave: the files (paths relative to the tree's root) and
/// their bytes.
pub type State = BTreeMap<PathBuf, Vec<u8>>;

impl Disk {
    /// The tree under `root` as it is now, all of it synced.
    pub fn snapshot(root: &Path) -> Disk {
        use std::os::unix::fs::MetadataExt;
        let mut disk = Disk {
            root: root.to_path_buf(),
            inodes: HashMap::new(),
            synced_names: BTreeMap::new(),
            names: BTreeMap::new(),
            unsynced_names: Vec::new(),
            next_made_up: u64::MAX,
        };
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    dirs.push(entry.path());
                } else if meta.is_file() {
                    let bytes = std::fs::read(entry.path()).unwrap();
                    disk.inodes.insert(meta.ino(), Inode { synced: bytes, unsynced: Vec::new() });
                    disk.names.insert(disk.name_of(&entry.path()).unwrap(), meta.ino());
                }
            }
        }
        disk.synced_names = disk.names.clone();
        disk
    }

    /// `path` relative to the tree's root; `None` for a path outside it.
    fn name_of(&self, path: &Path) -> Option<PathBuf> {
        path.strip_prefix(&self.root).ok().map(Path::to_path_buf)
    }

    /// A file the test itself wrote and synced (name and data) with `bytes`.
    pub fn user_file(&mut self, path: &Path, bytes: Vec<u8>) {
        let name = self.name_of(path).expect("a path in the tree");
        let synced = Inode { synced: bytes, unsynced: Vec::new() };
        match self.names.get(&name) {
            Some(ino) => {
                self.inodes.insert(*ino, synced);
            }
            None => {
                let ino = self.next_made_up;
                self.next_made_up -= 1;
                self.inodes.insert(ino, synced);
                self.names.insert(name.clone(), ino);
                self.synced_names.insert(name, ino);
            }
        }
    }

    /// Applies one logged operation.
    pub fn apply(&mut self, op: &IoOp) {
        match op {
            IoOp::Create { path, ino } => {
                let Some(name) = self.name_of(path) else { return };
                if self.names.get(&name) == Some(ino) {
                    return;
                }
                self.inodes.entry(*ino).or_default();
                self.link(NameOp::Link(name, *ino));
            }
            IoOp::Write { ino, offset, bytes } => {
                if let Some(inode) = self.inodes.get_mut(ino) {
                    inode.unsynced.push((*offset, bytes.clone()));
                }
            }
            IoOp::Sync { ino } => {
                if let Some(inode) = self.inodes.get_mut(ino) {
                    inode.synced = inode.current();
                    inode.unsynced.clear();
                }
            }
            IoOp::Rename { from, to } => {
                match (self.name_of(from), self.name_of(to)) {
                    (Some(from), Some(to)) => self.link(NameOp::Rename(from, to)),
                    (None, Some(to)) => {
                        // From outside the directory: a file the model never saw.
                        let ino = self.next_made_up;
                        self.next_made_up -= 1;
                        self.inodes.insert(ino, Inode::default());
                        self.link(NameOp::Link(to, ino));
                    }
                    (Some(from), None) => self.link(NameOp::Unlink(from)),
                    (None, None) => {}
                }
            }
            IoOp::Unlink { path } => {
                if let Some(name) = self.name_of(path) {
                    self.link(NameOp::Unlink(name));
                }
            }
            IoOp::SyncDir { dir } => {
                let Some(dir) = self.name_of(dir) else { return };
                let (now_synced, still): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.unsynced_names)
                        .into_iter()
                        .partition(|op| op.dir() == dir);
                for op in &now_synced {
                    apply_name_op(&mut self.synced_names, op);
                }
                self.unsynced_names = still;
            }
            IoOp::Mark(_) => {}
        }
    }

    fn link(&mut self, op: NameOp) {
        apply_name_op(&mut self.names, &op);
        self.unsynced_names.push(op);
    }

    /// The state with nothing unsynced lost.
    pub fn current(&self) -> State {
        self.names.iter().map(|(name, ino)| (name.clone(), self.inodes[ino].current())).collect()
    }

    /// A state a power loss now could leave: the first `names_kept` unsynced name changes, and
    /// for every sector an unsynced write touched the version `pick(versions)` chooses (0: the
    /// synced content; `k`: the content after the `k`-th write that touched it).
    pub fn crashed(&self, names_kept: usize, mut pick: impl FnMut(usize) -> usize) -> State {
        let mut names = self.synced_names.clone();
        for op in &self.unsynced_names[..names_kept.min(self.unsynced_names.len())] {
            apply_name_op(&mut names, op);
        }
        let mut contents: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut state = State::new();
        for (name, ino) in names {
            let bytes = contents
                .entry(ino)
                .or_insert_with(|| {
                    let inode = &self.inodes[&ino];
                    let mut bytes = inode.synced.clone();
                    for (sector, versions) in inode.sector_versions() {
                        let chosen = pick(versions.len() + 1);
                        if chosen == 0 {
                            continue;
                        }
                        let (data, len) = &versions[chosen - 1];
                        let from = sector * SECTOR;
                        if (bytes.len() as u64) < *len {
                            bytes.resize(*len as usize, 0);
                        }
                        apply(&mut bytes, from, data);
                    }
                    bytes
                })
                .clone();
            state.insert(name, bytes);
        }
        state
    }

    /// How many name changes are not synced yet.
    pub fn unsynced_names(&self) -> usize {
        self.unsynced_names.len()
    }

    /// Whether anything is unsynced (data or names).
    pub fn anything_unsynced(&self) -> bool {
        !self.unsynced_names.is_empty() || self.inodes.values().any(|i| !i.unsynced.is_empty())
    }
}

/// Writes `state` into the empty directory `dir`.
pub fn materialize(state: &State, dir: &Path) {
    for (name, bytes) in state {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}
