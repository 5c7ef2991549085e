package lang

import (
	"fmt"
	"reflect"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// The sandbox. A rule is code written by people who are not the operators of the system, so
// everything it can cost is bounded before it runs or while it runs:
//
//   - text: MaxRuleBytes per rule, MaxFileBytes per file (refused unread);
//   - syntax: MaxNodes per expression (expr.MaxNodes), checked by the parser;
//   - functions: an allow-list of pure builtins plus the city functions; nothing reads the
//     clock, the network, the disk or another event;
//   - memory: each run has a budget of MemoryBudget units in expr's VM (one unit per element
//     of a range, array or map an expression builds): `map(1..(n*1000000), #)` stops at once;
//   - time: every closure iteration (the {…} of all, any, filter, map, count, sum, find)
//     counts against stepBudget, the rule's cost budget on one event, so nested loops over a
//     big list stop instead of stalling the partition; a range with constant bounds longer
//     than that (`1..99000`) is refused at compile time;
//   - strings: joining strings with + is capped at maxStringBytes, so doubling a text in a
//     loop or a chain of lets cannot build gigabytes;
//   - failures: a rule over its cost budget (steps, memory, string length) on one event, or
//     that fails DisableAfter times in a row, is disabled (quarantined) on this instance,
//     with the reason in Stats and the flag in /metrics, until a new version is loaded.
//
// A failure of any of these is an error of that rule on that event, never a panic: expr's VM
// recovers its own panics, and compileSafe those of the compiler.

const (
	// MemoryBudget is the VM memory budget of one expression run, in expr's units (one per
	// element of a range, array or map it builds).
	MemoryBudget = 50_000
	// stepBudget is a rule's cost budget on one event: the closure iterations of its
	// condition, and then of its raise fields, together. At 0.2–0.3 µs a step it bounds a
	// rule to about a millisecond on any event; one over it is quarantined.
	stepBudget = 5_000
	// maxConstRange caps a range written with constant bounds (1..N): a longer one cannot
	// be looped over within stepBudget, so it is refused when the rule is saved.
	maxConstRange = stepBudget
	// maxStringBytes caps a string built with +.
	maxStringBytes = 64 << 10
	// MaxTextBytes caps a rendered title or agency; longer text is cut (with "…").
	MaxTextBytes = 512
	// MaxKeyBytes caps a rendered correlation key or group key; a longer one is an error,
	// because cutting it could merge unrelated incidents.
	MaxKeyBytes = 512
)

// Errors of the sandbox, wrapped in the EvalError of the rule that hit them.
var (
	ErrStepBudget   = PublicErrorf("cost budget exceeded: more than %d loop steps on one event", stepBudget)
	ErrStringBudget = PublicErrorf("string built with + is longer than %d bytes", maxStringBytes)
)

// stepper is an environment that counts closure iterations. Every environment is one.
type stepper interface {
	step() bool
}

// Run runs one program with the step counter reset.
func Run(m *vm.VM, p *vm.Program, env any) (any, error) {
	switch e := env.(type) {
	case *SensorEnv:
		e.steps = 0
	case *HotlineEnv:
		e.steps = 0
	case *VideoEnv:
		e.steps = 0
	case *HavingEnv:
		e.steps = 0
	}
	return m.Run(p, env)
}

// NewVM returns a VM with the rules' memory budget.
func NewVM() vm.VM { return vm.VM{MemoryBudget: MemoryBudget} }

// stepFn is the function the sandbox patcher wraps closure bodies in: __step($env, body)
// counts one iteration and passes the body's value through.
func stepFn(params ...any) (any, error) {
	if len(params) != 2 {
		return nil, fmt.Errorf("__step: want 2 arguments")
	}
	if s, ok := params[0].(stepper); ok && !s.step() {
		return nil, ErrStepBudget
	}
	return params[1], nil
}

// concatFn replaces string + string: the same result, with a cap on its length.
func concatFn(params ...any) (any, error) {
	if len(params) != 2 {
		return nil, fmt.Errorf("__concat: want 2 arguments")
	}
	a, ok1 := params[0].(string)
	b, ok2 := params[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("__concat: %T + %T", params[0], params[1])
	}
	if len(a)+len(b) > maxStringBytes {
		return nil, ErrStringBudget
	}
	return a + b, nil
}

// sandboxFunctions are the helper functions the patcher calls. Their names start with "__",
// which rule authors have no reason to write; calling them by hand does no harm.
var sandboxFunctions = []expr.Option{
	expr.Function("__step", stepFn, new(func(any, any) any)),
	expr.Function("__stepb", stepFn, new(func(any, bool) bool)),
	expr.Function("__stepf", stepFn, new(func(any, float64) float64)),
	expr.Function("__stepi", stepFn, new(func(any, int) int)),
	expr.Function("__steps", stepFn, new(func(any, string) string)),
	expr.Function("__concat", concatFn, new(func(string, string) string)),
	expr.Patch(sandboxPatcher{}),
}

// sandboxPatcher rewrites a checked syntax tree: closure bodies count their iterations and
// string + string goes through the capped concatenation. The checker runs before patchers, so
// node types are known; the tree is checked again afterwards.
type sandboxPatcher struct{}

var (
	boolType   = reflect.TypeOf(true)
	floatType  = reflect.TypeOf(0.0)
	intType    = reflect.TypeOf(0)
	stringType = reflect.TypeOf("")
)

func (sandboxPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		if isSandboxCall(n.Node) {
			return
		}
		fn := "__step"
		switch n.Node.Type() {
		case boolType:
			fn = "__stepb"
		case floatType:
			fn = "__stepf"
		case intType:
			fn = "__stepi"
		case stringType:
			fn = "__steps"
		}
		body := n.Node
		call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: []ast.Node{&ast.IdentifierNode{Value: "$env"}, body}}
		call.SetLocation(body.Location())
		n.Node = call
	case *ast.BinaryNode:
		if n.Operator != "+" || n.Left.Type() != stringType || n.Right.Type() != stringType {
			return
		}
		call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__concat"}, Arguments: []ast.Node{n.Left, n.Right}}
		call.SetLocation(n.Location())
		ast.Patch(node, call)
	}
}

func isSandboxCall(n ast.Node) bool {
	c, ok := n.(*ast.CallNode)
	if !ok {
		return false
	}
	id, ok := c.Callee.(*ast.IdentifierNode)
	return ok && len(id.Value) > 2 && id.Value[:2] == "__"
}

// checkRanges finds a range with constant bounds longer than maxConstRange in an expression
// and returns its rune offset and what is wrong with it. An expression that does not parse is
// left to the compiler to report.
func checkRanges(text string) (off int, msg string, bad bool) {
	tree, err := ParseSafe(text)
	if err != nil {
		return 0, "", false
	}
	v := &rangeChecker{}
	ast.Walk(&tree.Node, v)
	if v.bad == nil {
		return 0, "", false
	}
	return v.bad.Location().From, v.msg, true
}

type rangeChecker struct {
	bad ast.Node
	msg string
}

func (v *rangeChecker) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.BinaryNode)
	if !ok || n.Operator != ".." || v.bad != nil {
		return
	}
	from, ok1 := constInt(n.Left)
	to, ok2 := constInt(n.Right)
	if !ok1 || !ok2 || to < from {
		return
	}
	if size := uint64(to - from); size >= maxConstRange {
		v.bad = n
		v.msg = fmt.Sprintf("range %d..%d has %d elements; a rule may loop at most %d times on one event", from, to, size+1, stepBudget)
	}
}

// constInt reads an integer literal, negative or not.
func constInt(n ast.Node) (int, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.UnaryNode:
		if x.Operator == "-" {
			if v, ok := x.Node.(*ast.IntegerNode); ok {
				return -v.Value, true
			}
		}
	}
	return 0, false
}
