package deploytest

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Without the Bicep compiler, the secret tests still want to know what an expression
// yields for given parameter values and a given state of Azure, not only how it is
// spelled. This is a small evaluator for the Bicep expressions infra/ uses in app
// settings, conditions and outputs: literals and interpolated strings, parameters
// (given or defaulted), one-line variables, member and index access (also the safe
// `.?` and `[?]`), `!`, `&&`, `||`, `==`, `!=`, `??`, `? :` and a few functions. A
// module output or a resource property is known only at deployment: it evaluates to an
// opaque value that renders as «module.outputs.name» inside a string. Anything else is
// an error that names the construct, so a template written beyond this subset fails
// the test loudly instead of passing it unchecked.

// opaque is a value known only at deployment time (a module output, a resource property).
type opaque string

type moduleRef string  // a module symbol
type outputsRef string // a module symbol's outputs
type resourceRef string

// evaluator evaluates expressions of one Bicep file.
type evaluator struct {
	t      testing.TB
	f      *bicepFile
	params map[string]param
	set    map[string]any                           // parameter values of this run
	funcs  map[string]func(args []any) (any, error) // functions the test supplies (list)
	mods   map[string]bool
	res    map[string]bool
	depth  int
}

func newEvaluator(t testing.TB, f *bicepFile, set map[string]any) *evaluator {
	t.Helper()
	ev := &evaluator{t: t, f: f, params: f.params(), set: set, funcs: map[string]func([]any) (any, error){},
		mods: map[string]bool{}, res: map[string]bool{}}
	for _, m := range f.modules(t) {
		ev.mods[m.symbol] = true
	}
	for _, r := range f.resources(t) {
		ev.res[r.symbol] = true
	}
	for name := range set {
		if _, ok := ev.params[name]; !ok {
			t.Fatalf("%s has no parameter %s", f.rel, name)
		}
	}
	return ev
}

// eval evaluates one expression (source text of f, comments removed).
func (ev *evaluator) eval(expr string) (any, error) {
	ev.depth++
	defer func() { ev.depth-- }()
	if ev.depth > 32 {
		return nil, errors.New("expressions nest too deep (a variable that refers to itself?)")
	}
	toks, err := lexBicep(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.TrimSpace(expr), err)
	}
	p := &exprParser{toks: toks}
	n, err := p.parseTernary()
	if err == nil && p.peek().kind != tEOF {
		err = fmt.Errorf("unexpected %q", p.peek().text)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.TrimSpace(expr), err)
	}
	return ev.evalNode(n)
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNum
	tStr
	tOp
)

type strPart struct {
	text   string // literal text, or the source of an interpolated expression
	isExpr bool
}

type bicepToken struct {
	kind  tokKind
	text  string
	parts []strPart // tStr
}

var bicepOps = []string{"??", "&&", "||", "==", "!=", "=~", "!~", "<=", ">=", ".?", "[?",
	"::", "(", ")", "[", "]", "{", "}", ".", "?", ":", "!", ",", "<", ">", "+", "-", "*", "/", "%"}

func lexBicep(src string) ([]bicepToken, error) {
	var out []bicepToken
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			parts, end, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			out = append(out, bicepToken{kind: tStr, text: src[i:end], parts: parts})
			i = end
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(src) && (src[j] == '_' || src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			out = append(out, bicepToken{kind: tIdent, text: src[i:j]})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			out = append(out, bicepToken{kind: tNum, text: src[i:j]})
			i = j
		default:
			matched := false
			for _, op := range bicepOps {
				if strings.HasPrefix(src[i:], op) {
					// `x ? [` is a ternary, not a safe index: `[?` only right after an operand.
					if op == "[?" && (len(out) == 0 || !endsOperand(out[len(out)-1])) {
						continue
					}
					out = append(out, bicepToken{kind: tOp, text: op})
					i += len(op)
					matched = true
					break
				}
			}
			if !matched {
				return nil, fmt.Errorf("unexpected character %q", c)
			}
		}
	}
	return append(out, bicepToken{kind: tEOF}), nil
}

func endsOperand(t bicepToken) bool {
	return t.kind == tIdent || t.kind == tNum || t.kind == tStr || t.kind == tOp && (t.text == ")" || t.text == "]")
}

// lexString reads the string literal starting at src[i] into literal and interpolated
// parts, returning the offset just past it.
func lexString(src string, i int) ([]strPart, int, error) {
	if strings.HasPrefix(src[i:], "'''") {
		j := strings.Index(src[i+3:], "'''")
		if j < 0 {
			return nil, 0, errors.New("unterminated ''' string")
		}
		return []strPart{{text: src[i+3 : i+3+j]}}, i + 3 + j + 3, nil
	}
	var parts []strPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, strPart{text: lit.String()})
			lit.Reset()
		}
	}
	for j := i + 1; j < len(src); {
		switch {
		case src[j] == '\'':
			flush()
			return parts, j + 1, nil
		case src[j] == '\\' && j+1 < len(src):
			switch e := src[j+1]; e {
			case 'n':
				lit.WriteByte('\n')
			case 'r':
				lit.WriteByte('\r')
			case 't':
				lit.WriteByte('\t')
			case '\\', '\'', '$':
				lit.WriteByte(e)
			case 'u':
				k := strings.IndexByte(src[j:], '}')
				if !strings.HasPrefix(src[j+2:], "{") || k < 0 {
					return nil, 0, errors.New(`bad \u escape`)
				}
				r, err := strconv.ParseUint(src[j+3:j+k], 16, 32)
				if err != nil || !utf8.ValidRune(rune(r)) {
					return nil, 0, errors.New(`bad \u escape`)
				}
				lit.WriteRune(rune(r))
				j += k + 1
				continue
			default:
				return nil, 0, fmt.Errorf(`unknown escape \%c`, e)
			}
			j += 2
		case strings.HasPrefix(src[j:], "${"):
			flush()
			depth, k := 1, j+2
			for k < len(src) && depth > 0 {
				switch src[k] {
				case '\'':
					_, end, err := lexString(src, k)
					if err != nil {
						return nil, 0, err
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
				return nil, 0, errors.New("unterminated ${ in string")
			}
			parts = append(parts, strPart{text: src[j+2 : k-1], isExpr: true})
			j = k
		default:
			lit.WriteByte(src[j])
			j++
		}
	}
	return nil, 0, errors.New("unterminated string")
}

type (
	nLit    struct{ v any }
	nStr    struct{ parts []strPart }
	nIdent  struct{ name string }
	nMember struct {
		x    any
		name string
		safe bool
	}
	nIndex struct {
		x, i any
		safe bool
	}
	nCall struct {
		name string
		args []any
	}
	nUnary struct {
		op string
		x  any
	}
	nBinary struct {
		op   string
		l, r any
	}
	nCond struct{ c, a, b any }
)

type exprParser struct {
	toks []bicepToken
	i    int
}

func (p *exprParser) peek() bicepToken { return p.toks[p.i] }
func (p *exprParser) next() bicepToken {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}
func (p *exprParser) isOp(s string) bool { t := p.peek(); return t.kind == tOp && t.text == s }
func (p *exprParser) expect(s string) error {
	if !p.isOp(s) {
		return fmt.Errorf("want %q, found %q", s, p.peek().text)
	}
	p.next()
	return nil
}

// Precedence, loosest first: ? :, ??, ||, &&, == !=, unary !, postfix.
func (p *exprParser) parseTernary() (any, error) {
	c, err := p.parseBinary(0)
	if err != nil || !p.isOp("?") {
		return c, err
	}
	p.next()
	a, err := p.parseTernary()
	if err != nil {
		return nil, err
	}
	if err := p.expect(":"); err != nil {
		return nil, err
	}
	b, err := p.parseTernary()
	if err != nil {
		return nil, err
	}
	return nCond{c, a, b}, nil
}

var binaryLevels = [][]string{{"??"}, {"||"}, {"&&"}, {"==", "!="}}

func (p *exprParser) parseBinary(level int) (any, error) {
	if level == len(binaryLevels) {
		return p.parseUnary()
	}
	l, err := p.parseBinary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tOp || !oneOf(binaryLevels[level], t.text) {
			return l, nil
		}
		p.next()
		r, err := p.parseBinary(level + 1)
		if err != nil {
			return nil, err
		}
		l = nBinary{t.text, l, r}
	}
}

func oneOf(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *exprParser) parseUnary() (any, error) {
	if p.isOp("!") {
		p.next()
		x, err := p.parseUnary()
		return nUnary{"!", x}, err
	}
	return p.parsePostfix()
}

func (p *exprParser) parsePostfix() (any, error) {
	x, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp(".") || p.isOp(".?"):
			safe := p.next().text == ".?"
			name := p.next()
			if name.kind != tIdent {
				return nil, fmt.Errorf("want a property name, found %q", name.text)
			}
			if p.isOp("(") {
				return nil, fmt.Errorf("method call .%s() is beyond this evaluator", name.text)
			}
			x = nMember{x, name.text, safe}
		case p.isOp("[") || p.isOp("[?"):
			safe := p.next().text == "[?"
			i, err := p.parseTernary()
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			x = nIndex{x, i, safe}
		default:
			return x, nil
		}
	}
}

func (p *exprParser) parsePrimary() (any, error) {
	t := p.next()
	switch t.kind {
	case tStr:
		return nStr{t.parts}, nil
	case tNum:
		n, err := strconv.ParseInt(t.text, 10, 64)
		return nLit{n}, err
	case tIdent:
		switch t.text {
		case "true":
			return nLit{true}, nil
		case "false":
			return nLit{false}, nil
		case "null":
			return nLit{nil}, nil
		}
		if !p.isOp("(") {
			return nIdent{t.text}, nil
		}
		p.next()
		var args []any
		for !p.isOp(")") {
			a, err := p.parseTernary()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if !p.isOp(",") {
				break
			}
			p.next()
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return nCall{t.text, args}, nil
	case tOp:
		if t.text == "(" {
			x, err := p.parseTernary()
			if err != nil {
				return nil, err
			}
			return x, p.expect(")")
		}
	}
	if t.kind == tEOF {
		return nil, errors.New("unexpected end of expression")
	}
	return nil, fmt.Errorf("%q is beyond this evaluator (object and array literals, arithmetic, lambdas)", t.text)
}

func (ev *evaluator) evalNode(n any) (any, error) {
	switch n := n.(type) {
	case nLit:
		return n.v, nil
	case nStr:
		var b strings.Builder
		for _, part := range n.parts {
			if !part.isExpr {
				b.WriteString(part.text)
				continue
			}
			v, err := ev.eval(part.text)
			if err != nil {
				return nil, err
			}
			s, err := render(v)
			if err != nil {
				return nil, err
			}
			b.WriteString(s)
		}
		return b.String(), nil
	case nIdent:
		return ev.ident(n.name)
	case nMember:
		x, err := ev.evalNode(n.x)
		if err != nil {
			return nil, err
		}
		return member(x, n.name, n.safe)
	case nIndex:
		x, err := ev.evalNode(n.x)
		if err != nil {
			return nil, err
		}
		i, err := ev.evalNode(n.i)
		if err != nil {
			return nil, err
		}
		switch i := i.(type) {
		case string:
			return member(x, i, n.safe)
		case int64:
			a, ok := x.([]any)
			if !ok || i < 0 || int(i) >= len(a) {
				if n.safe {
					return nil, nil
				}
				return nil, fmt.Errorf("index %d of %v", i, x)
			}
			return a[i], nil
		}
		return nil, fmt.Errorf("index %v is beyond this evaluator", i)
	case nCall:
		args := make([]any, len(n.args))
		for k, a := range n.args {
			v, err := ev.evalNode(a)
			if err != nil {
				return nil, err
			}
			args[k] = v
		}
		return ev.call(n.name, args)
	case nUnary:
		x, err := ev.evalNode(n.x)
		if err != nil {
			return nil, err
		}
		b, ok := x.(bool)
		if !ok {
			return nil, fmt.Errorf("! of %v, want a bool", x)
		}
		return !b, nil
	case nBinary:
		return ev.binary(n)
	case nCond:
		c, err := ev.evalNode(n.c)
		if err != nil {
			return nil, err
		}
		b, ok := c.(bool)
		if !ok {
			return nil, fmt.Errorf("condition %v, want a bool", c)
		}
		if b {
			return ev.evalNode(n.a)
		}
		return ev.evalNode(n.b)
	}
	return nil, fmt.Errorf("node %T", n)
}

func (ev *evaluator) binary(n nBinary) (any, error) {
	l, err := ev.evalNode(n.l)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "??":
		if l != nil {
			return l, nil
		}
		return ev.evalNode(n.r)
	case "&&", "||":
		lb, ok := l.(bool)
		if !ok {
			return nil, fmt.Errorf("%s of %v, want bools", n.op, l)
		}
		if lb == (n.op == "||") {
			return lb, nil // short circuit
		}
		r, err := ev.evalNode(n.r)
		if err != nil {
			return nil, err
		}
		rb, ok := r.(bool)
		if !ok {
			return nil, fmt.Errorf("%s of %v, want bools", n.op, r)
		}
		return rb, nil
	}
	r, err := ev.evalNode(n.r)
	if err != nil {
		return nil, err
	}
	_, lo := l.(opaque)
	_, ro := r.(opaque)
	if lo != ro {
		return nil, fmt.Errorf("%v %s %v depends on a deployment-time value", l, n.op, r)
	}
	eq := reflect.DeepEqual(l, r)
	if n.op == "!=" {
		return !eq, nil
	}
	return eq, nil
}

// ident resolves a parameter (given, else its default), a one-line variable, or a
// module or resource symbol.
func (ev *evaluator) ident(name string) (any, error) {
	if v, ok := ev.set[name]; ok {
		return v, nil
	}
	if p, ok := ev.params[name]; ok {
		if !p.hasDefault {
			return nil, fmt.Errorf("parameter %s has no default and no value in this test", name)
		}
		return ev.eval(p.def)
	}
	if ms := ev.f.find(regexp.MustCompile(`(?m)^var[ \t]+` + regexp.QuoteMeta(name) + `[ \t]*=`)); len(ms) == 1 {
		from, to := ev.f.varBlockOrLine(ev.t, name)
		if c := ev.f.masked[from]; c == '{' || c == '[' {
			return nil, fmt.Errorf("variable %s is an object or array literal, beyond this evaluator", name)
		}
		return ev.eval(ev.f.noComments[from:to])
	}
	if ev.mods[name] {
		return moduleRef(name), nil
	}
	if ev.res[name] {
		return resourceRef(name), nil
	}
	return nil, fmt.Errorf("unknown identifier %s", name)
}

func member(x any, name string, safe bool) (any, error) {
	switch x := x.(type) {
	case moduleRef:
		if name == "outputs" {
			return outputsRef(x), nil
		}
		return opaque(string(x) + "." + name), nil
	case outputsRef:
		return opaque(string(x) + ".outputs." + name), nil
	case resourceRef:
		return opaque(string(x) + "." + name), nil
	case opaque:
		return opaque(string(x) + "." + name), nil
	case map[string]any:
		v, ok := x[name]
		if !ok && !safe {
			return nil, fmt.Errorf("no property %s", name)
		}
		return v, nil
	case nil:
		if safe {
			return nil, nil
		}
		return nil, fmt.Errorf("property %s of null", name)
	}
	return nil, fmt.Errorf("property %s of %v", name, x)
}

func (ev *evaluator) call(name string, args []any) (any, error) {
	if f, ok := ev.funcs[name]; ok {
		return f(args)
	}
	argc := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%s() takes %d arguments here, got %d", name, n, len(args))
		}
		return nil
	}
	strs := func() ([]string, error) {
		out := make([]string, len(args))
		for i, a := range args {
			s, ok := a.(string)
			if !ok {
				if _, dyn := a.(opaque); dyn {
					return nil, fmt.Errorf("%s() of %v depends on a deployment-time value", name, a)
				}
				return nil, fmt.Errorf("%s() of %v, want strings", name, a)
			}
			out[i] = s
		}
		return out, nil
	}
	switch name {
	case "empty":
		if err := argc(1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case nil:
			return true, nil
		case string:
			return v == "", nil
		case map[string]any:
			return len(v) == 0, nil
		case []any:
			return len(v) == 0, nil
		case opaque:
			return nil, fmt.Errorf("empty(%v) depends on a deployment-time value", v)
		}
		return nil, fmt.Errorf("empty(%v)", args[0])
	case "startsWith", "endsWith", "contains":
		if err := argc(2); err != nil {
			return nil, err
		}
		s, err := strs()
		if err != nil {
			return nil, err
		}
		switch name {
		case "startsWith":
			return strings.HasPrefix(strings.ToLower(s[0]), strings.ToLower(s[1])), nil
		case "endsWith":
			return strings.HasSuffix(strings.ToLower(s[0]), strings.ToLower(s[1])), nil
		}
		return strings.Contains(s[0], s[1]), nil
	case "toLower", "toUpper":
		if err := argc(1); err != nil {
			return nil, err
		}
		s, err := strs()
		if err != nil {
			return nil, err
		}
		if name == "toLower" {
			return strings.ToLower(s[0]), nil
		}
		return strings.ToUpper(s[0]), nil
	case "tenant", "subscription", "resourceGroup", "deployment", "uniqueString", "guid", "utcNow":
		return opaque(name + "()"), nil
	}
	return nil, fmt.Errorf("function %s() is beyond this evaluator", name)
}

// render is a value as string interpolation shows it; a deployment-time value as «name».
func render(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case opaque:
		return "«" + string(v) + "»", nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("cannot interpolate %v", v)
}

// outputExpr is the expression of `output name type = <expression>` (one line).
func (f *bicepFile) outputExpr(t testing.TB, name string) string {
	t.Helper()
	ms := f.find(regexp.MustCompile(`(?m)^output[ \t]+` + regexp.QuoteMeta(name) + `[ \t]+\w+[ \t]*=[ \t]*(.*)$`))
	if len(ms) != 1 {
		t.Fatalf("%s: want one output %s, found %d", f.rel, name, len(ms))
	}
	return f.text(ms[0][2], ms[0][3])
}

// secureParam reports whether parameter name carries @secure() among its decorators.
func (f *bicepFile) secureParam(name string) bool {
	ms := f.find(regexp.MustCompile(`(?m)^param[ \t]+` + regexp.QuoteMeta(name) + `\b`))
	if len(ms) != 1 {
		return false
	}
	lines := strings.Split(f.noComments[:ms[0][0]], "\n")
	for i := len(lines) - 2; i >= 0; i-- { // the last element is the param line's own start
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "@") {
			break
		}
		if strings.ReplaceAll(l, " ", "") == "@secure()" {
			return true
		}
	}
	return false
}

func TestEvaluator(t *testing.T) {
	src := `@secure()
@description('x')
param secret string = ''
param flag bool = false
param name string = 'kv'
param required string
var ref = '@Microsoft.KeyVault(VaultName=${vault.outputs.name};SecretName=${name})'
var cur = list('${api.outputs.id}/config/appsettings', '2024-04-01').properties
var obj = {
  a: 1
}
module vault 'v.bicep' = {
  name: 'v'
}
module api 'a.bicep' = {
  name: 'a'
}
`
	f := &bicepFile{rel: "eval.bicep", src: src, noComments: mustMask(t, src, false), masked: mustMask(t, src, true)}
	if !f.secureParam("secret") || f.secureParam("flag") {
		t.Error("secureParam: want secret only")
	}
	var listed []any
	ev := func(set map[string]any, current map[string]any) *evaluator {
		e := newEvaluator(t, f, set)
		e.funcs["list"] = func(args []any) (any, error) {
			listed = args
			return map[string]any{"properties": current}, nil
		}
		return e
	}
	for _, c := range []struct {
		expr    string
		set     map[string]any
		current map[string]any
		want    any
	}{
		{"ref", nil, nil, "@Microsoft.KeyVault(VaultName=«vault.outputs.name»;SecretName=kv)"},
		{"!empty(secret) ? 'a' : 'b'", nil, nil, "b"},
		{"!empty(secret) ? 'a' : 'b'", map[string]any{"secret": "s"}, nil, "a"},
		{"(!empty(secret) || startsWith(cur.?S ?? '', '@x')) ? 'y' : ''", nil, map[string]any{}, ""},
		{"(!empty(secret) || startsWith(cur.?S ?? '', '@x')) ? 'y' : ''", nil, map[string]any{"S": "@X(1)"}, "y"},
		{"!empty(secret) || startsWith(cur.?S ?? '', '@x') ? 'y' : ''", nil, map[string]any{"S": "no"}, ""},
		{"cur[?'S'] ?? 'none'", nil, map[string]any{}, "none"},
		{"flag == false && name != 'x'", nil, nil, true},
		{"'a\\'b\\${c}${'d${name}'}'", nil, nil, "a'b${c}dkv"},
		{"flag ? cur['S'] : 2", nil, map[string]any{}, int64(2)}, // the branch not taken is not evaluated
	} {
		got, err := ev(c.set, c.current).eval(c.expr)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("eval(%s) = %#v, %v; want %#v", c.expr, got, err, c.want)
		}
	}
	if _, err := ev(nil, map[string]any{}).eval("cur"); err != nil || len(listed) != 2 || listed[0] != "«api.outputs.id»/config/appsettings" {
		t.Errorf("list got %v (%v)", listed, err)
	}
	for _, bad := range []string{"required", "obj", "empty(vault.outputs.name)", "cur.S", "nope", "1 + 2", "name.length()", "'open", "(flag"} {
		if v, err := ev(nil, map[string]any{}).eval(bad); err == nil {
			t.Errorf("eval(%s) = %v, want an error", bad, v)
		}
	}
}
