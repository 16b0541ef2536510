// Command k8s-validate checks the Kubernetes manifests of deploy/k8s against the Kubernetes API
// types, strictly, as `kubectl apply --validate=strict` would without a cluster:
//
//  1. every manifest file (bases, resources, patches) is decoded document by document into the
//     typed struct its apiVersion/kind names (k8s.io/api), refusing unknown fields, duplicate
//     keys and wrong types, each named by file and field path;
//  2. every kustomization under the root is rendered with kustomize's own library (krusty), and
//     each rendered object is decoded the same way, so overlays are checked as applied;
//  3. semantic rules over each rendering: container ports named, probes /ready and /health on a
//     real port, resources set, non-root, selectors matching the pod templates, Service and
//     NetworkPolicy ports that exist, Ingress only to a public listener, ConfigMap references
//     that resolve, a migration Job that never runs in parallel, scrape annotations on the
//     internal port.
//
// Usage: k8s-validate [-print DIR] ROOT
//
// Exit 0 when all is well (one summary line per kustomization), 1 with one line per problem
// ("<file>: <Kind>/<name>: <field>: <message>"), 2 for bad usage. -print DIR writes the
// rendering of the kustomization DIR (relative to ROOT) as a JSON array and checks nothing.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	printDir := flag.String("print", "", "print the rendering of this kustomization (relative to ROOT) as JSON")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: k8s-validate [-print DIR] ROOT")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	t, err := loadTree(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-validate: %v\n", err)
		os.Exit(2)
	}
	if *printDir != "" {
		os.Exit(printRendering(t, strings.Trim(*printDir, "/")))
	}
	problems, summary := validate(t)
	for _, line := range summary {
		fmt.Println(line)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "k8s-validate: %d problem(s)\n", len(problems))
		os.Exit(1)
	}
}

func validate(t *tree) ([]string, []string) {
	var problems, summary []string
	docs := 0
	// A file refused here is not reported again for each rendering that includes it.
	badFiles := map[string]bool{}
	for _, rel := range t.yamlFiles() {
		parts, err := documents(t.files[rel])
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", rel, err))
			continue
		}
		for i, doc := range parts {
			d, errs := decodeStrict(doc)
			docs++
			for _, e := range errs {
				problems = append(problems, fmt.Sprintf("%s: %s: %s", rel, describeDoc(i, d), e))
				badFiles[rel] = true
			}
		}
	}
	summary = append(summary, fmt.Sprintf("k8s-validate: files: %d documents in %d files decoded strictly", docs, len(t.yamlFiles())))
	mem, err := t.memFS()
	if err != nil {
		return append(problems, err.Error()), summary
	}
	for _, dir := range t.kustomizations {
		objs, err := t.render(mem, dir)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s/kustomization.yaml: kustomize build: %v", dir, err))
			continue
		}
		var decodedObjs []object
		kinds := map[string]int{}
		undecoded := 0
		for _, r := range objs {
			d, errs := decodeStrict(r.YAML)
			if len(errs) > 0 {
				undecoded++
			}
			for _, e := range errs {
				if !badFiles[r.Source] {
					problems = append(problems, fmt.Sprintf("%s: %s (rendered by %s): %s", r.Source, describeDoc(0, d), dir, e))
				}
			}
			if d != nil {
				decodedObjs = append(decodedObjs, object{*d, r.Source})
				kinds[d.Kind]++
			}
		}
		if undecoded > 0 {
			// The rules below would only echo the decode errors (a Service selecting nothing).
			summary = append(summary, fmt.Sprintf("k8s-validate: %s: %d objects did not decode; semantic checks skipped", dir, undecoded))
			continue
		}
		for _, p := range check(decodedObjs) {
			problems = append(problems, fmt.Sprintf("%s (rendered by %s)", p, dir))
		}
		summary = append(summary, fmt.Sprintf("k8s-validate: %s: %d objects (%s)", dir, len(objs), countKinds(kinds)))
	}
	return problems, summary
}

func countKinds(kinds map[string]int) string {
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func printRendering(t *tree, dir string) int {
	mem, err := t.memFS()
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-validate: %v\n", err)
		return 1
	}
	objs, err := t.render(mem, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-validate: %s: kustomize build: %v\n", dir, err)
		return 1
	}
	out := make([]any, 0, len(objs))
	for _, r := range objs {
		var v any
		if err := yaml.Unmarshal(r.YAML, &v); err != nil {
			fmt.Fprintf(os.Stderr, "k8s-validate: %s: %v\n", r.Source, err)
			return 1
		}
		out = append(out, map[string]any{"source": r.Source, "object": v})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		return 1
	}
	return 0
}
