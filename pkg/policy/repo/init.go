package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// initAuthor signs the first commit of a repository made by Init.
var initAuthor = object.Signature{Name: "gatectl", Email: "gatectl@localhost"}

// Init creates a policy repository in dir from the files of template: it
// writes them, initialises a git repository and makes the first commit on
// branch (DefaultBranch when empty), authored "gatectl <gatectl@localhost>".
// dir must not exist or be empty; Init never overwrites anything.
func Init(dir string, template fs.FS, branch string) (Commit, error) {
	if branch == "" {
		branch = DefaultBranch
	}
	if err := plumbing.NewBranchReferenceName(branch).Validate(); err != nil {
		return Commit{}, fmt.Errorf("init policy repository: %q is not a valid branch name: %w", branch, err)
	}
	if err := makeEmptyDir(dir); err != nil {
		return Commit{}, err
	}
	if err := writeTemplate(dir, template); err != nil {
		return Commit{}, fmt.Errorf("init policy repository in %s: %w", dir, err)
	}
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
	})
	if err != nil {
		return Commit{}, fmt.Errorf("init policy repository in %s: %w", dir, err)
	}
	wt, err := r.Worktree()
	if err != nil {
		return Commit{}, fmt.Errorf("init policy repository in %s: %w", dir, err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return Commit{}, fmt.Errorf("init policy repository in %s: add files: %w", dir, err)
	}
	sig := initAuthor
	sig.When = time.Now()
	h, err := wt.Commit("Initial policy from gatectl policy init", &git.CommitOptions{
		Author:            &sig,
		Committer:         &sig,
		AllowEmptyCommits: true,
	})
	if err != nil {
		return Commit{}, fmt.Errorf("init policy repository in %s: commit: %w", dir, err)
	}
	obj, err := r.CommitObject(h)
	if err != nil {
		return Commit{}, fmt.Errorf("init policy repository in %s: read commit: %w", dir, err)
	}
	return newCommit(obj), nil
}

// makeEmptyDir creates dir, or accepts it if it exists and is empty.
func makeEmptyDir(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("init policy repository: create %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("init policy repository: %s exists and cannot be read: %w", dir, err)
	}
	if len(entries) > 0 {
		// Refuse: writing the template could overwrite someone's files.
		return fmt.Errorf("init policy repository: %s is not empty; pick a new or empty directory", dir)
	}
	return nil
}

// writeTemplate copies every regular file of template into dir.
func writeTemplate(dir string, template fs.FS) error {
	return fs.WalkDir(template, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch {
		case d.IsDir():
			if name == "." {
				return nil
			}
			return os.Mkdir(dst, 0o755)
		case d.Type().IsRegular():
			return copyFile(template, name, dst)
		default:
			return fmt.Errorf("template file %s is not a regular file", name)
		}
	})
}

func copyFile(template fs.FS, name, dst string) error {
	src, err := template.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	// O_EXCL: never overwrite, even if something appeared since the check.
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return out.Close()
}
