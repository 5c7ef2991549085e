package lang

import "github.com/expr-lang/expr/vm"

type noLocation struct{}

func (noLocation) at(string, int, int) Position { return Position{} }

// CompileRule compiles r as Parse would, without a source to locate errors in.
func CompileRule(r *Rule) (*Compiled, []error) { return compileRule(r, noLocation{}) }

// SetCompiled gives r the programs c.
func SetCompiled(r *Rule, c *Compiled) { r.c = c }

// ProgramsOf is every program of p a matching event runs: when, severity and the
// placeholders of title and correlation key.
func ProgramsOf(p *Programs) []*vm.Program {
	programs := []*vm.Program{p.When, p.Severity.whole}
	for _, part := range append(p.Title.parts, p.CorrelationKey.parts...) {
		if part.prog != nil {
			programs = append(programs, part.prog)
		}
	}
	return programs
}
