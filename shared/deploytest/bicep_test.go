package deploytest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// repoRoot is the folder holding go.mod, found by walking up from the test's directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// readRepo reads a file by its slash-separated path from the repository root.
func readRepo(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bicepFile is one Bicep file in three views with identical offsets: the source, the
// source without comments, and the source without comments or string contents (quotes
// kept), in which brackets and keywords can be found without being fooled by text.
type bicepFile struct {
	rel        string // path from the repository root, slash-separated
	src        string
	noComments string
	masked     string
}

func loadBicep(t testing.TB, rel string) *bicepFile {
	t.Helper()
	src := readRepo(t, rel)
	noComments, err := mask(src, false)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	masked, err := mask(src, true)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return &bicepFile{rel: rel, src: src, noComments: noComments, masked: masked}
}

// bicepFiles lists every .bicep file under infra/, slash-separated from the root.
func bicepFiles(t testing.TB) []string {
	t.Helper()
	root := repoRoot(t)
	var out []string
	err := filepath.WalkDir(filepath.Join(root, "infra"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".bicep") {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no .bicep files under infra/")
	}
	sort.Strings(out)
	return out
}

// mask blanks comments and, when strs is set, the inside of string literals
// (interpolations included), keeping newlines and the quote characters so offsets and
// line numbers stay those of src. It fails on an unterminated comment or string.
func mask(src string, strs bool) (string, error) {
	out := []byte(src)
	blank := func(from, to int) {
		for i := from; i < to; i++ {
			if out[i] != '\n' {
				out[i] = ' '
			}
		}
	}
	for i := 0; i < len(src); {
		switch {
		case strings.HasPrefix(src[i:], "//"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				j = len(src) - i
			}
			blank(i, i+j)
			i += j
		case strings.HasPrefix(src[i:], "/*"):
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return "", fmt.Errorf("line %d: unterminated /* comment", lineAt(src, i))
			}
			blank(i, i+2+j+2)
			i += 2 + j + 2
		case strings.HasPrefix(src[i:], "'''"):
			j := strings.Index(src[i+3:], "'''")
			if j < 0 {
				return "", fmt.Errorf("line %d: unterminated ''' string", lineAt(src, i))
			}
			end := i + 3 + j + 3
			if strs {
				blank(i+1, end-1)
			}
			i = end
		case src[i] == '\'':
			end, err := skipString(src, i)
			if err != nil {
				return "", err
			}
			if strs {
				blank(i+1, end-1)
			}
			i = end
		default:
			i++
		}
	}
	return string(out), nil
}

// skipString returns the offset just past the single-quoted string starting at src[i],
// stepping over escapes and ${...} interpolations (which may hold strings themselves).
func skipString(src string, i int) (int, error) {
	for j := i + 1; j < len(src); {
		switch {
		case src[j] == '\\':
			j += 2
		case src[j] == '\'':
			return j + 1, nil
		case src[j] == '\n':
			return 0, fmt.Errorf("line %d: string not closed on its line", lineAt(src, i))
		case strings.HasPrefix(src[j:], "${"):
			depth := 1
			k := j + 2
			for k < len(src) && depth > 0 {
				switch src[k] {
				case '\'':
					end, err := skipString(src, k)
					if err != nil {
						return 0, err
					}
					k = end
					continue
				case '{':
					depth++
				case '}':
					depth--
				}
				k++
			}
			if depth > 0 {
				return 0, fmt.Errorf("line %d: unterminated ${ in string", lineAt(src, i))
			}
			j = k
		default:
			j++
		}
	}
	return 0, fmt.Errorf("line %d: unterminated string", lineAt(src, i))
}

func lineAt(s string, off int) int { return strings.Count(s[:off], "\n") + 1 }

var pairs = map[byte]byte{'{': '}', '[': ']', '(': ')'}

// matchClose returns the offset of the bracket closing the one at masked[open].
func matchClose(masked string, open int) (int, error) {
	var stack []byte
	for i := open; i < len(masked); i++ {
		c := masked[i]
		switch c {
		case '{', '[', '(':
			stack = append(stack, pairs[c])
		case '}', ']', ')':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return 0, fmt.Errorf("line %d: unexpected %q", lineAt(masked, i), c)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("line %d: %q never closed", lineAt(masked, open), masked[open])
}

// balanced reports the first bracket error of a whole masked file.
func balanced(masked string) error {
	var stack []int
	for i := 0; i < len(masked); i++ {
		switch c := masked[i]; c {
		case '{', '[', '(':
			stack = append(stack, i)
		case '}', ']', ')':
			if len(stack) == 0 || pairs[masked[stack[len(stack)-1]]] != c {
				return fmt.Errorf("line %d: unexpected %q", lineAt(masked, i), c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		i := stack[len(stack)-1]
		return fmt.Errorf("line %d: %q never closed", lineAt(masked, i), masked[i])
	}
	return nil
}

// find runs re over the comment-free source and keeps the matches that start in code
// (not inside a string), returning submatch offsets.
func (f *bicepFile) find(re *regexp.Regexp) [][]int {
	var out [][]int
	for _, m := range re.FindAllStringSubmatchIndex(f.noComments, -1) {
		start := m[0]
		for start < m[1] && (f.noComments[start] == ' ' || f.noComments[start] == '\t' || f.noComments[start] == '\n') {
			start++
		}
		if start < m[1] && f.masked[start] == f.noComments[start] {
			out = append(out, m)
		}
	}
	return out
}

// text returns the comment-free source between two offsets, trimmed.
func (f *bicepFile) text(from, to int) string { return strings.TrimSpace(f.noComments[from:to]) }

type param struct {
	name, typ  string
	def        string // raw default expression, "" when none
	hasDefault bool
	line       int
}

var paramRE = regexp.MustCompile(`(?m)^param[ \t]+(\w+)[ \t]+(\w+)(?:[ \t]*=[ \t]*(.*))?$`)

func (f *bicepFile) params() map[string]param {
	out := map[string]param{}
	for _, m := range f.find(paramRE) {
		p := param{name: f.noComments[m[2]:m[3]], typ: f.noComments[m[4]:m[5]], line: lineAt(f.src, m[0])}
		if m[6] >= 0 {
			p.def, p.hasDefault = f.text(m[6], m[7]), true
		}
		out[p.name] = p
	}
	return out
}

var outputRE = regexp.MustCompile(`(?m)^output[ \t]+(\w+)[ \t]+\w+[ \t]*=`)

func (f *bicepFile) outputs() map[string]bool {
	out := map[string]bool{}
	for _, m := range f.find(outputRE) {
		out[f.noComments[m[2]:m[3]]] = true
	}
	return out
}

// block returns the offsets of the bracket opening at or after from and of its partner.
func (f *bicepFile) block(from int) (open, close int, err error) {
	rel := strings.IndexAny(f.masked[from:], "{[")
	if rel < 0 {
		return 0, 0, errors.New("no block")
	}
	open = from + rel
	close, err = matchClose(f.masked, open)
	return open, close, err
}

// varBlock finds `var name = {...}` or `var name = [...]` (the first bracket after '=').
func (f *bicepFile) varBlock(t testing.TB, name string) (open, close int) {
	t.Helper()
	ms := f.find(regexp.MustCompile(`(?m)^var[ \t]+` + regexp.QuoteMeta(name) + `[ \t]*=`))
	if len(ms) != 1 {
		t.Fatalf("%s: want one `var %s = ...`, found %d", f.rel, name, len(ms))
	}
	open, close, err := f.block(ms[0][1])
	if err != nil {
		t.Fatalf("%s: var %s: %v", f.rel, name, err)
	}
	return open, close
}

type entry struct {
	key, value string // value: the raw expression on the key's line (first line only)
	line       int
}

var keyRE = regexp.MustCompile(`^[ \t]*(?:(\w+)|'([^']*)')[ \t]*:[ \t]*(.*)$`)

// entries lists the `key: value` lines directly inside the object block (open, close).
func (f *bicepFile) entries(open, close int) []entry {
	var out []entry
	depth := 0
	lineStart := open + 1
	for i := open + 1; i <= close; i++ {
		if i < close && f.masked[i] != '\n' {
			continue
		}
		masked := f.masked[lineStart:i]
		if depth == 0 {
			if m := keyRE.FindStringSubmatchIndex(masked); m != nil {
				src := f.noComments[lineStart:i]
				key := ""
				if m[2] >= 0 {
					key = src[m[2]:m[3]]
				} else {
					key = src[m[4]:m[5]]
				}
				out = append(out, entry{key: key, value: strings.TrimSpace(src[m[6]:m[7]]), line: lineAt(f.src, lineStart)})
			}
		}
		for _, c := range []byte(masked) {
			switch c {
			case '{', '[', '(':
				depth++
			case '}', ']', ')':
				depth--
			}
		}
		lineStart = i + 1
	}
	return out
}

// entryMap is entries as a map; duplicate keys fail the test.
func (f *bicepFile) entryMap(t testing.TB, open, close int) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	for _, e := range f.entries(open, close) {
		if _, dup := out[e.key]; dup {
			t.Errorf("%s:%d: key %s appears twice", f.rel, e.line, e.key)
		}
		out[e.key] = e
	}
	return out
}

// objects returns the blocks of the objects directly inside the array block (open, close).
func (f *bicepFile) objects(t testing.TB, open, close int) [][2]int {
	t.Helper()
	var out [][2]int
	for i := open + 1; i < close; i++ {
		switch f.masked[i] {
		case '{':
			end, err := matchClose(f.masked, i)
			if err != nil {
				t.Fatalf("%s: %v", f.rel, err)
			}
			out = append(out, [2]int{i, end})
			i = end
		case '[', '(':
			end, err := matchClose(f.masked, i)
			if err != nil {
				t.Fatalf("%s: %v", f.rel, err)
			}
			i = end
		}
	}
	return out
}

// stringItems returns the string literals directly inside the array block (open, close).
func (f *bicepFile) stringItems(t testing.TB, open, close int) []string {
	t.Helper()
	var out []string
	for i := open + 1; i < close; i++ {
		switch f.masked[i] {
		case '\'':
			end, err := skipString(f.noComments, i)
			if err != nil {
				t.Fatalf("%s: %v", f.rel, err)
			}
			s, ok := literal(f.noComments[i:end])
			if !ok {
				t.Fatalf("%s:%d: %s is not a plain string", f.rel, lineAt(f.src, i), f.noComments[i:end])
			}
			out = append(out, s)
			i = end - 1
		case '{', '[', '(':
			end, err := matchClose(f.masked, i)
			if err != nil {
				t.Fatalf("%s: %v", f.rel, err)
			}
			i = end
		}
	}
	return out
}

// literal unquotes a Bicep string literal without interpolation.
func literal(expr string) (string, bool) {
	expr = strings.TrimSpace(expr)
	if len(expr) < 2 || expr[0] != '\'' || expr[len(expr)-1] != '\'' || strings.Contains(expr, "${") {
		return "", false
	}
	var b strings.Builder
	body := expr[1 : len(expr)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\'' {
			return "", false // a second string: not one literal
		}
		if c == '\\' && i+1 < len(body) {
			i++
			switch body[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			default:
				c = body[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

var identRE = regexp.MustCompile(`^[A-Za-z_]\w*$`)

// constValue resolves an expression to its value when it is a string literal, a bare
// number or boolean, or a parameter whose default is one of those; ok is false for
// anything computed.
func constValue(expr string, params map[string]param) (string, bool) {
	if s, ok := literal(expr); ok {
		return s, true
	}
	if regexp.MustCompile(`^-?\d+$`).MatchString(expr) || expr == "true" || expr == "false" {
		return expr, true
	}
	if identRE.MatchString(expr) {
		if p, ok := params[expr]; ok && p.hasDefault {
			return constValue(p.def, nil)
		}
	}
	return "", false
}

type resourceDecl struct {
	symbol, typ string
	line        int
	header      string // the declaration line up to its opening bracket
	open, close int
}

var resourceRE = regexp.MustCompile(`(?m)^[ \t]*resource[ \t]+(\w+)[ \t]+'([^']*)'`)

func (f *bicepFile) resources(t testing.TB) []resourceDecl {
	t.Helper()
	var out []resourceDecl
	for _, m := range f.find(resourceRE) {
		open, close, err := f.block(m[1])
		if err != nil {
			t.Fatalf("%s:%d: %v", f.rel, lineAt(f.src, m[0]), err)
		}
		out = append(out, resourceDecl{
			symbol: f.noComments[m[2]:m[3]], typ: f.noComments[m[4]:m[5]],
			line: lineAt(f.src, m[0]), header: f.text(m[0], open), open: open, close: close,
		})
	}
	return out
}

type moduleDecl struct {
	symbol, path string
	line         int
	open, close  int
}

var moduleRE = regexp.MustCompile(`(?m)^[ \t]*module[ \t]+(\w+)[ \t]+'([^']*)'`)

func (f *bicepFile) modules(t testing.TB) []moduleDecl {
	t.Helper()
	var out []moduleDecl
	for _, m := range f.find(moduleRE) {
		open, close, err := f.block(m[1])
		if err != nil {
			t.Fatalf("%s:%d: %v", f.rel, lineAt(f.src, m[0]), err)
		}
		out = append(out, moduleDecl{symbol: f.noComments[m[2]:m[3]], path: f.noComments[m[4]:m[5]],
			line: lineAt(f.src, m[0]), open: open, close: close})
	}
	return out
}

// module returns main.bicep's module whose path is path (relative to infra/).
func (f *bicepFile) module(t testing.TB, path string) moduleDecl {
	t.Helper()
	for _, m := range f.modules(t) {
		if m.path == path {
			return m
		}
	}
	t.Fatalf("%s: no module '%s'", f.rel, path)
	return moduleDecl{}
}

// moduleParams returns the `params: {...}` entries of a module declaration.
func (f *bicepFile) moduleParams(t testing.TB, m moduleDecl) map[string]entry {
	t.Helper()
	body := f.entryMap(t, m.open, m.close)
	p, ok := body["params"]
	if !ok {
		return map[string]entry{}
	}
	open, close, err := f.block(f.lineOffset(p.line))
	if err != nil {
		t.Fatalf("%s:%d: params: %v", f.rel, p.line, err)
	}
	return f.entryMap(t, open, close)
}

// lineOffset is the offset of the start of a 1-based line.
func (f *bicepFile) lineOffset(line int) int {
	off := 0
	for l := 1; l < line; l++ {
		off += strings.IndexByte(f.src[off:], '\n') + 1
	}
	return off
}

func TestScannerMasksCommentsAndStrings(t *testing.T) {
	src := "var a = { // '{\n  b: 'x}${c ? '}' : '{'}y' /* ] */\n}\n"
	masked, err := mask(src, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := balanced(masked); err != nil {
		t.Fatalf("masked %q: %v", masked, err)
	}
	if strings.ContainsAny(strings.ReplaceAll(masked, "var a = {", ""), "]/x") || !strings.HasSuffix(masked, "}\n") {
		t.Errorf("masked = %q", masked)
	}
	for _, bad := range []string{"var a = 'open\n'", "/* never", "x = '${a'"} {
		if _, err := mask(bad, true); err == nil {
			t.Errorf("mask(%q) accepted an unterminated literal", bad)
		}
	}
	if err := balanced("{ [ }"); err == nil {
		t.Error("balanced accepted { [ }")
	}
	f := &bicepFile{rel: "x", src: src, noComments: mustMask(t, src, false), masked: masked}
	open, close, err := f.block(0)
	if err != nil {
		t.Fatal(err)
	}
	es := f.entries(open, close)
	if len(es) != 1 || es[0].key != "b" || es[0].value != "'x}${c ? '}' : '{'}y'" {
		t.Errorf("entries = %+v", es)
	}
	if v, ok := literal(`'a\'b'`); !ok || v != "a'b" {
		t.Errorf("literal = %q, %v", v, ok)
	}
	if _, ok := literal("'a${b}'"); ok {
		t.Error("an interpolated string is not a literal")
	}
}

func mustMask(t testing.TB, src string, strs bool) string {
	t.Helper()
	m, err := mask(src, strs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
