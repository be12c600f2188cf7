package policy

import (
	"cmp"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Default settings, used for every key gatectl.toml leaves out.
const (
	DefaultReviewEvery     = Duration(90 * 24 * time.Hour)
	DefaultReviewGrace     = Duration(14 * 24 * time.Hour)
	DefaultApprovalTimeout = Duration(15 * time.Minute)
)

// DefaultSettings is gatectl.toml's content when the file or a key is
// missing.
func DefaultSettings() Settings {
	var s Settings
	s.Access.Admins = []string{"group:security"}
	s.Access.Auditors = []string{"group:security"}
	s.Reviews.Every = DefaultReviewEvery
	s.Reviews.Grace = DefaultReviewGrace
	s.Approvals.Timeout = DefaultApprovalTimeout
	s.Recording.Required = true
	return s
}

// Load reads and validates the policy repository in fsys: gatectl.toml,
// identity.toml, targets/*.toml, grants/*.toml, rules/*.toml and
// tests/*.toml. It returns a policy only when everything is valid; otherwise
// the error is a *LoadError listing every problem with its file and line, so
// a caller keeps its last good policy (fail closed). Load reads nothing but
// those files, refuses symbolic links among them, and refuses files past its
// limits on size and shape before decoding them, so that it returns quickly
// whatever the commit holds.
func Load(fsys fs.FS) (*Policy, error) {
	l := &loader{fsys: fsys, ruleIDs: map[string]Pos{}, broken: map[string]bool{}}
	p := &Policy{Settings: DefaultSettings(), Targets: map[string]*Target{}}
	targets, grants, rules, tests := l.list("targets"), l.list("grants"), l.list("rules"), l.list("tests")
	if n := len(targets) + len(grants) + len(rules) + len(tests); n > maxFiles {
		// Refused before reading any: the count alone says the commit is not a policy.
		l.problems.add(".", 0, "the policy has %d files in targets/, grants/, rules/ and tests/, more than the %d a policy may have; merge files", n, maxFiles)
		return nil, l.err()
	}
	l.loadIdentity(p) // first: settings may name service accounts
	l.loadSettings(p)
	for _, name := range targets {
		l.loadTarget(p, name)
	}
	grantIDs := map[string]Pos{}
	for _, name := range grants {
		l.loadGrants(p, name, grantIDs)
	}
	for _, name := range rules {
		l.loadRules(p, name)
	}
	for _, name := range tests {
		l.loadTests(p, name)
	}
	if !l.problems.empty() {
		return nil, l.err()
	}
	return p, nil
}

// Limits on the files of one policy, so that a commit cannot make the loader
// (and the TOML decoder, whose cost per byte is high for deeply structured
// input) run for minutes or fill memory; the gateway keeps its last good
// policy only if loading returns. Real policies are a few hundred KiB at
// most: these leave room for ten times that. `gatectl policy check` applies
// the same limits, so CI refuses what the gateway would.
const (
	// maxFileSize bounds one policy file.
	maxFileSize = 256 << 10
	// maxTotalSize bounds all policy files together.
	maxTotalSize = 2 << 20
	// maxFiles bounds the number of files in targets/, grants/, rules/
	// and tests/.
	maxFiles = 1000
)

type loader struct {
	fsys     fs.FS
	problems problems
	read     int64           // bytes of policy files read so far
	tooLarge bool            // maxTotalSize was reached: read no more files
	broken   map[string]bool // targets whose file did not decode
	ruleIDs  map[string]Pos  // ids of every kind of rule share one namespace
}

// err is the load's problems as a *LoadError, sorted by file and line.
func (l *loader) err() *LoadError {
	slices.SortStableFunc(l.problems.list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
	return &LoadError{Problems: l.problems.list, Omitted: l.problems.omitted}
}

// list returns the names of dir/*.toml in lexical order; a missing directory
// is empty. Anything else that keeps a directory or one of its .toml files
// from being read as it is in the repository is a problem, never an empty
// list: loading a commit without its rules would fail open. A symbolic link
// is refused even where the file system follows it (`gatectl policy check`
// on a checkout), because the gateway reads the repository's tree, where a
// link's target is not part of the commit: CI and the gateway must see the
// same files.
func (l *loader) list(dir string) []string {
	info, err := fs.Lstat(l.fsys, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		l.problems.add(dir, 0, "cannot read the directory: %v", err)
		return nil
	case info.Mode()&fs.ModeSymlink != 0:
		l.problems.add(dir, 0, "is a symbolic link; policy directories must be real directories in the repository")
		return nil
	case !info.IsDir():
		l.problems.add(dir, 0, "is not a directory; policy files go in %s/*.toml", dir)
		return nil
	}
	entries, err := fs.ReadDir(l.fsys, dir)
	if err != nil {
		l.problems.add(dir, 0, "cannot read the directory: %v", err)
		return nil
	}
	var names []string
	for _, e := range entries {
		if ok, _ := path.Match("*.toml", e.Name()); !ok {
			continue
		}
		name := dir + "/" + e.Name()
		switch t := e.Type(); {
		case !utf8.ValidString(e.Name()):
			// fs.FS paths are UTF-8: no file system could open it, and
			// "does not exist" would puzzle its author.
			l.problems.add(name, 0, "file name is not valid UTF-8; rename the file: policy file names must be UTF-8")
		case t&fs.ModeSymlink != 0:
			l.problems.add(name, 0, "is a symbolic link; policy files must be real files in the repository")
		case !t.IsRegular():
			l.problems.add(name, 0, "is not a regular file; policy files must be real files in the repository")
		default:
			names = append(names, name)
		}
	}
	return names
}

// exists reports whether name is a file in fsys; a missing optional file
// is not a problem. Any other error is: defaults must not silently replace a
// file that is there but cannot be read (fail closed). A symbolic link is
// refused as in list.
func (l *loader) exists(name string) bool {
	info, err := fs.Lstat(l.fsys, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false
	case err != nil:
		l.problems.add(name, 0, "cannot read the file: %v", err)
		return false
	case info.Mode()&fs.ModeSymlink != 0:
		l.problems.add(name, 0, "is a symbolic link; policy files must be real files in the repository")
		return false
	case !info.Mode().IsRegular():
		l.problems.add(name, 0, "is not a regular file; policy files must be real files in the repository")
		return false
	}
	return true
}

func (l *loader) loadSettings(p *Policy) {
	const name = "gatectl.toml"
	if !l.exists(name) {
		return
	}
	f, ok := l.decodeFile(name, &p.Settings)
	if !ok {
		return
	}
	l.unknownKeys(f)
	l.checkSettings(p, f)
}

func (l *loader) loadIdentity(p *Policy) {
	const name = "identity.toml"
	if !l.exists(name) {
		return
	}
	var raw struct {
		Issuer         []toml.Primitive `toml:"issuer"`
		ServiceAccount []toml.Primitive `toml:"service_account"`
	}
	f, ok := l.decodeFile(name, &raw)
	if !ok {
		return
	}
	seen := map[string]Pos{}
	for i, iss := range decodeItems[Issuer](l, f, "issuer", raw.Issuer) {
		if iss != nil {
			l.checkIssuer(f, i, iss, seen)
			p.Issuers = append(p.Issuers, *iss)
		}
	}
	l.chooseUserIssuer(f, p.Issuers)
	seen = map[string]Pos{}
	for i, sa := range decodeItems[ServiceAccount](l, f, "service_account", raw.ServiceAccount) {
		if sa != nil {
			l.checkServiceAccount(p, f, i, sa, seen)
			p.ServiceAccounts = append(p.ServiceAccounts, *sa)
		}
	}
	l.unknownKeys(f)
}

// targetFile is the shape of targets/<name>.toml. Credentials are keyed by
// access level, which TOML can only spell as strings.
type targetFile struct {
	Target
	Credentials map[string]Credential `toml:"credentials"`
}

func (l *loader) loadTarget(p *Policy, name string) {
	t := &Target{Name: strings.TrimSuffix(path.Base(name), ".toml"), Pos: Pos{name, 1}}
	// The target exists even when its file is broken, so that grants and
	// rules naming it are not reported as dangling on top of the real
	// problem; the load fails either way.
	p.Targets[t.Name] = t
	var raw targetFile
	f, ok := l.decodeFile(name, &raw)
	if !ok {
		l.broken[t.Name] = true
		return
	}
	raw.Target.Name, raw.Target.Pos = t.Name, t.Pos
	*t = raw.Target
	l.unknownKeys(f)
	l.checkTarget(f, t, raw.Credentials)
}

func (l *loader) loadGrants(p *Policy, name string, ids map[string]Pos) {
	var raw struct {
		Grant []toml.Primitive `toml:"grant"`
	}
	f, ok := l.decodeFile(name, &raw)
	if !ok {
		return
	}
	for i, g := range decodeItems[Grant](l, f, "grant", raw.Grant) {
		if g != nil {
			l.checkGrant(p, f, i, g, ids)
			p.Grants = append(p.Grants, g)
		}
	}
	l.unknownKeys(f)
}

func (l *loader) loadRules(p *Policy, name string) {
	var raw struct {
		Deny    []toml.Primitive `toml:"deny"`
		Approve []toml.Primitive `toml:"approve"`
		Mask    []toml.Primitive `toml:"mask"`
	}
	f, ok := l.decodeFile(name, &raw)
	if !ok {
		return
	}
	for i, r := range decodeItems[DenyRule](l, f, "deny", raw.Deny) {
		if r != nil {
			l.checkDeny(p, f, i, r)
			p.Denies = append(p.Denies, r)
		}
	}
	for i, r := range decodeItems[ApproveRule](l, f, "approve", raw.Approve) {
		if r != nil {
			l.checkApprove(p, f, i, r)
			p.Approves = append(p.Approves, r)
		}
	}
	for i, r := range decodeItems[MaskRule](l, f, "mask", raw.Mask) {
		if r != nil {
			l.checkMask(p, f, i, r)
			p.Masks = append(p.Masks, r)
		}
	}
	l.unknownKeys(f)
}

func (l *loader) loadTests(p *Policy, name string) {
	var raw struct {
		Test []toml.Primitive `toml:"test"`
	}
	f, ok := l.decodeFile(name, &raw)
	if !ok {
		return
	}
	for i, t := range decodeItems[Test](l, f, "test", raw.Test) {
		if t != nil {
			l.checkTest(p, f, i, t)
			p.Tests = append(p.Tests, t)
		}
	}
	l.unknownKeys(f)
}
