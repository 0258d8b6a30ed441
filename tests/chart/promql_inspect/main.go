// svcprobe-promql-inspect parses PromQL expressions with Prometheus's own parser and reports,
// for each one, the metric names and label names it uses. The chart tests feed it every
// expression from the alert rules and the dashboard and compare the result with docs/metrics.md.
//
// Input (stdin):  a JSON array of expression strings.
// Output (stdout): a JSON array, one object per input expression, in order:
//
//	{"error": "...", "selectors": [{"metric": "m", "labels": ["l", ...]}],
//	 "grouping": ["l", ...], "produced": ["l", ...], "functions": ["f", ...],
//	 "rated": ["m", ...]}
//
// "grouping" holds labels named in by/without and on/ignoring/group_left/group_right;
// "produced" holds destination labels created by label_replace/label_join (their source
// labels count as grouping labels). "rated" holds the metrics read through rate, irate,
// increase or resets, which only make sense on counters (and histogram _bucket/_sum/_count).
// Exit status 0 even when some expressions do not parse:
// the caller reads "error".
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels"`
}

type report struct {
	Error     string     `json:"error,omitempty"`
	Selectors []selector `json:"selectors"`
	Grouping  []string   `json:"grouping"`
	Produced  []string   `json:"produced"`
	Functions []string   `json:"functions"`
	Rated     []string   `json:"rated"`
}

type set map[string]struct{}

func (s set) add(names ...string) {
	for _, n := range names {
		s[n] = struct{}{}
	}
}

func (s set) sorted() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func stringArg(e parser.Expr) (string, bool) {
	if lit, ok := e.(*parser.StringLiteral); ok {
		return lit.Val, true
	}
	return "", false
}

func inspect(text string) report {
	r := report{Selectors: []selector{}, Grouping: []string{}, Produced: []string{}, Functions: []string{}, Rated: []string{}}
	expr, err := parser.ParseExpr(text)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	grouping, produced, functions, rated := set{}, set{}, set{}, set{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			sel := selector{Metric: n.Name, Labels: []string{}}
			for _, m := range n.LabelMatchers {
				if m.Name == labels.MetricName {
					if sel.Metric == "" && m.Type == labels.MatchEqual {
						sel.Metric = m.Value
					}
					continue
				}
				sel.Labels = append(sel.Labels, m.Name)
			}
			sort.Strings(sel.Labels)
			r.Selectors = append(r.Selectors, sel)
		case *parser.AggregateExpr:
			grouping.add(n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				grouping.add(n.VectorMatching.MatchingLabels...)
				grouping.add(n.VectorMatching.Include...)
			}
		case *parser.Call:
			functions.add(n.Func.Name)
			switch n.Func.Name {
			case "rate", "irate", "increase", "resets":
				parser.Inspect(n.Args[0], func(inner parser.Node, _ []parser.Node) error {
					if vs, ok := inner.(*parser.VectorSelector); ok && vs.Name != "" {
						rated.add(vs.Name)
					}
					return nil
				})
			case "label_replace":
				if dst, ok := stringArg(n.Args[1]); ok {
					produced.add(dst)
				}
				if src, ok := stringArg(n.Args[3]); ok {
					grouping.add(src)
				}
			case "label_join":
				if dst, ok := stringArg(n.Args[1]); ok {
					produced.add(dst)
				}
				for _, a := range n.Args[3:] {
					if src, ok := stringArg(a); ok {
						grouping.add(src)
					}
				}
			}
		}
		return nil
	})
	r.Grouping = grouping.sorted()
	r.Produced = produced.sorted()
	r.Functions = functions.sorted()
	r.Rated = rated.sorted()
	return r
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintln(os.Stderr, "svcprobe-promql-inspect: stdin must be a JSON array of strings:", err)
		os.Exit(2)
	}
	out := make([]report, 0, len(exprs))
	for _, e := range exprs {
		out = append(out, inspect(e))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "svcprobe-promql-inspect:", err)
		os.Exit(1)
	}
}
