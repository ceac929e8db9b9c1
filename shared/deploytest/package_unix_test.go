//go:build unix

package deploytest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runPackage runs scripts/package.sh out from the repository root. The script's go build
// runs in its own process group so a test deadline stops the build too, not only sh.
func runPackage(t *testing.T, out string) (string, error) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH: cannot run scripts/package.sh")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH: scripts/package.sh needs it")
	}
	ctx := t.Context()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-20*time.Second))
		defer cancel()
	}
	root := repoRoot(t)
	cmd := exec.CommandContext(ctx, sh, filepath.Join(root, "scripts", "package.sh"), out)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("scripts/package.sh did not finish before the test deadline. Its -trimpath linux build does not share the build cache with `go test`: a cold cache builds msgraph for ~9 minutes on 2 cores. Run `scripts/package.sh` (or `make package`) once, or raise -timeout.\n%s", b)
	}
	return string(b), err
}

// scripts/package.sh assembles the app root the Functions host expects: host.json, one
// folder per function with its function.json, and the executable named by host.json,
// built for Linux amd64 without cgo; nothing else (no local settings, no Go sources).
func TestPackageScript(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips building the deployment package")
	}
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "dist")
	// A previous package with a stale file: the script must empty the folder first.
	if err := os.MkdirAll(filepath.Join(out, "Gone"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"host.json", "stale.txt", "Gone/function.json"} {
		if err := os.WriteFile(filepath.Join(out, p), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if log, err := runPackage(t, out); err != nil {
		t.Fatalf("scripts/package.sh %s: %v\n%s", out, err, log)
	}

	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	hostJSON := readRepo(t, "host.json")
	if err := json.Unmarshal([]byte(hostJSON), &host); err != nil {
		t.Fatal(err)
	}
	exe := host.CustomHandler.Description.DefaultExecutablePath
	if exe == "" {
		t.Fatal("host.json has no customHandler.description.defaultExecutablePath")
	}

	want := map[string]bool{"host.json": true, exe: true}
	for _, f := range functions(t) {
		want[f.name] = true
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !want[e.Name()] {
			t.Errorf("the package holds %s, which is neither host.json, the handler nor a function folder", e.Name())
		}
		delete(want, e.Name())
	}
	for name := range want {
		t.Errorf("the package lacks %s", name)
	}

	if got, err := os.ReadFile(filepath.Join(out, "host.json")); err != nil || string(got) != hostJSON {
		t.Errorf("package host.json differs from the repository's (err %v)", err)
	}
	for _, f := range functions(t) {
		src, _ := os.ReadFile(filepath.Join(root, "functions", f.name, "function.json"))
		got, err := os.ReadFile(filepath.Join(out, f.name, "function.json"))
		if err != nil || !bytes.Equal(got, src) {
			t.Errorf("package %s/function.json differs from functions/%s/function.json (err %v)", f.name, f.name, err)
		}
	}
	err = filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if name == "local.settings.json" || strings.HasSuffix(name, ".go") || name == ".tools" || (strings.HasPrefix(name, ".") && p != out) {
			t.Errorf("the package holds %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(out, exe)
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 != 0o111 {
		t.Errorf("%s has mode %v: the host must be able to execute it", exe, fi.Mode())
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s is not an ELF file: %v", exe, err)
	}
	defer ef.Close()
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		t.Errorf("%s is %v %v, want ELFCLASS64 EM_X86_64 (Linux amd64)", exe, ef.Class, ef.Machine)
	}
	if ef.OSABI != elf.ELFOSABI_NONE && ef.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("%s OS ABI %v, want Linux", exe, ef.OSABI)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked (has an interpreter): build with CGO_ENABLED=0", exe)
		}
	}
}

// The script empties its output folder, so it must refuse one that is not a package.
func TestPackageScriptRefusesAForeignFolder(t *testing.T) {
	out := t.TempDir()
	keep := filepath.Join(out, "precious.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := runPackage(t, out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("scripts/package.sh on a foreign folder: err %v, want a non-zero exit\n%s", err, log)
	}
	if !strings.Contains(log, "refusing") {
		t.Errorf("output %q does not say why it refused", log)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the script deleted a file of a foreign folder: %v", err)
	}
}
