package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeLimits bound what one treeFS reads, so that a commit cannot make the
// gateway read without end: the loader runs on every new commit of the
// branch, and a commit it cannot finish loading is never refused. Going past
// a limit is an error from Open (or ReadDir), which the loader reports and
// which refuses the commit.
type treeLimits struct {
	fileSize  int64 // bytes of one file
	totalSize int64 // bytes of all the files read, together
	files     int   // files read, and entries of one directory
}

// defaultTreeLimits are the limits of a policy commit. They are a backstop
// for any loader: pkg/policy has lower limits of its own (256 KiB a file,
// 2 MiB and 1000 files in all), which `gatectl policy check` applies too.
var defaultTreeLimits = treeLimits{fileSize: 8 << 20, totalSize: 32 << 20, files: 4096}

// errUnsupportedEntry is returned when opening a symlink or submodule: their
// targets are not part of the commit, so following them could read something
// that was never reviewed.
var errUnsupportedEntry = errors.New("symlinks and submodules are not supported in a policy repository")

// treeFS is a read-only fs.FS over the tree of one commit, read straight from
// the object store without a working-tree checkout. It is safe for concurrent
// use; files are read whole on Open, so an open file does not touch the store.
type treeFS struct {
	mu      sync.Mutex // the object store is not documented as safe for concurrent reads
	store   storer.EncodedObjectStorer
	root    *object.Tree
	modTime time.Time
	limits  treeLimits
	read    int64 // bytes of files read so far
	files   int   // files read so far
}

var (
	_ fs.FS         = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadLinkFS = (*treeFS)(nil)
)

// newTreeFS returns the files of tree; every file reports modTime.
func newTreeFS(store storer.EncodedObjectStorer, tree *object.Tree, modTime time.Time) *treeFS {
	return &treeFS{store: store, root: tree, modTime: modTime, limits: defaultTreeLimits}
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if name == "." {
		return t.openDir(".", t.root)
	}
	e, err := t.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := t.openEntry(name, e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	f, err := t.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, ok := f.(*blobFile)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return bytes.Clone(r.data), nil
}

// ReadDir implements fs.ReadDirFS.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := t.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, ok := f.(*dirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return d.ReadDir(-1)
}

// Lstat implements fs.ReadLinkFS. It describes a symbolic link rather than
// refusing it as Open does, so that a loader can say what it found; it reads
// no file's content.
func (t *treeFS) Lstat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if name == "." {
		return entryInfo{name: ".", mode: fs.ModeDir | 0o555, modTime: t.modTime}, nil
	}
	e, err := t.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	info := entryInfo{name: path.Base(name), mode: entryMode(e.Mode), modTime: t.modTime}
	if info.mode.IsRegular() {
		if info.size, err = t.store.EncodedObjectSize(e.Hash); err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: name, Err: fmt.Errorf("size of blob %s: %w", e.Hash, err)}
		}
	}
	return info, nil
}

// ReadLink implements fs.ReadLinkFS: the target a symbolic link names, as
// written in the commit. Nothing in treeFS follows it.
func (t *treeFS) ReadLink(name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, err := t.lookup(name)
	if err == nil && e.Mode != filemode.Symlink {
		err = errors.New("not a symbolic link")
	}
	var data []byte
	if err == nil {
		data, err = t.readBlob(e)
	}
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(data), nil
}

// lookup finds the entry at a valid, non-root path.
func (t *treeFS) lookup(name string) (object.TreeEntry, error) {
	dir := t.root
	parts := strings.Split(name, "/")
	for i, part := range parts {
		e, ok := findEntry(dir, part)
		if !ok {
			return object.TreeEntry{}, fs.ErrNotExist
		}
		if i == len(parts)-1 {
			return e, nil
		}
		if e.Mode != filemode.Dir {
			return object.TreeEntry{}, fs.ErrNotExist
		}
		sub, err := object.GetTree(t.store, e.Hash)
		if err != nil {
			return object.TreeEntry{}, fmt.Errorf("read tree %s: %w", e.Hash, err)
		}
		dir = sub
	}
	return object.TreeEntry{}, fs.ErrNotExist
}

func findEntry(tree *object.Tree, name string) (object.TreeEntry, bool) {
	for _, e := range tree.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return object.TreeEntry{}, false
}

func (t *treeFS) openEntry(name string, e object.TreeEntry) (fs.File, error) {
	switch e.Mode {
	case filemode.Dir:
		sub, err := object.GetTree(t.store, e.Hash)
		if err != nil {
			return nil, fmt.Errorf("read tree %s: %w", e.Hash, err)
		}
		return t.openDir(name, sub)
	case filemode.Regular, filemode.Executable, filemode.Deprecated:
		return t.openBlob(name, e)
	default:
		return nil, errUnsupportedEntry
	}
}

func (t *treeFS) openBlob(name string, e object.TreeEntry) (*blobFile, error) {
	data, err := t.readBlob(e)
	if err != nil {
		return nil, err
	}
	info := entryInfo{name: path.Base(name), size: int64(len(data)), mode: entryMode(e.Mode), modTime: t.modTime}
	return &blobFile{info: info, data: data, r: bytes.NewReader(data)}, nil
}

// readBlob reads the content of e within t's limits, which it checks before
// reading.
func (t *treeFS) readBlob(e object.TreeEntry) ([]byte, error) {
	blob, err := object.GetBlob(t.store, e.Hash)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", e.Hash, err)
	}
	switch {
	case blob.Size > t.limits.fileSize:
		return nil, fmt.Errorf("file is %d bytes, more than the %d a file in a policy commit may have", blob.Size, t.limits.fileSize)
	case t.read+blob.Size > t.limits.totalSize:
		return nil, fmt.Errorf("reading this file takes the commit past %d bytes, the most that is read from one policy commit", t.limits.totalSize)
	case t.files >= t.limits.files:
		return nil, fmt.Errorf("more than %d files would be read from this commit, the most that is read from one policy commit", t.limits.files)
	}
	rc, err := blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", e.Hash, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, blob.Size))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", e.Hash, err)
	}
	t.read += int64(len(data))
	t.files++
	return data, nil
}

func (t *treeFS) openDir(name string, tree *object.Tree) (*dirFile, error) {
	if n := len(tree.Entries); n > t.limits.files {
		return nil, fmt.Errorf("directory has %d entries, more than the %d files a policy commit may have", n, t.limits.files)
	}
	entries := make([]fs.DirEntry, 0, len(tree.Entries))
	for _, e := range tree.Entries {
		info := entryInfo{name: e.Name, mode: entryMode(e.Mode), modTime: t.modTime}
		if info.mode.IsRegular() {
			size, err := t.store.EncodedObjectSize(e.Hash)
			if err != nil {
				return nil, fmt.Errorf("size of %s: %w", path.Join(name, e.Name), err)
			}
			info.size = size
		}
		entries = append(entries, fs.FileInfoToDirEntry(info))
	}
	// git orders a directory "a" as "a/", after "a.b"; fs wants plain name order.
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	info := entryInfo{name: path.Base(name), mode: fs.ModeDir | 0o555, modTime: t.modTime}
	return &dirFile{info: info, entries: entries}, nil
}

// entryMode maps a git mode to a read-only fs mode.
func entryMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir:
		return fs.ModeDir | 0o555
	case filemode.Executable:
		return 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o444
	case filemode.Submodule:
		return fs.ModeIrregular | 0o444
	default:
		return 0o444
	}
}

type entryInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i entryInfo) Name() string       { return i.name }
func (i entryInfo) Size() int64        { return i.size }
func (i entryInfo) Mode() fs.FileMode  { return i.mode }
func (i entryInfo) ModTime() time.Time { return i.modTime }
func (i entryInfo) IsDir() bool        { return i.mode.IsDir() }
func (i entryInfo) Sys() any           { return nil }

type blobFile struct {
	info entryInfo
	data []byte
	r    *bytes.Reader
}

func (f *blobFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *blobFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *blobFile) Close() error               { return nil }

// Seek and ReadAt let callers such as http.FileServer or toml decoders use
// the file as an io.ReadSeeker.
func (f *blobFile) Seek(offset int64, whence int) (int64, error) { return f.r.Seek(offset, whence) }
func (f *blobFile) ReadAt(p []byte, off int64) (int, error)      { return f.r.ReadAt(p, off) }

type dirFile struct {
	info    entryInfo
	entries []fs.DirEntry
	offset  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile; entries are sorted by name.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if n <= 0 {
		d.offset = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.offset += n
	return rest[:n], nil
}
