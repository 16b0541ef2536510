package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// memRoot is where the tree is mirrored in the in-memory file system kustomize builds from.
const memRoot = "/tree"

var kustomizationNames = map[string]bool{
	"kustomization.yaml": true, "kustomization.yml": true, "Kustomization": true,
}

// tree is the manifest tree: every file under root except the validator's own directory.
type tree struct {
	root           string
	files          map[string][]byte // slash path relative to root -> content
	kustomizations []string          // directories (relative to root) holding a kustomization
}

func loadTree(root string) (*tree, error) {
	t := &tree{root: root, files: map[string][]byte{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "validate" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		t.files[rel] = data
		if kustomizationNames[d.Name()] {
			t.kustomizations = append(t.kustomizations, filepath.ToSlash(filepath.Dir(rel)))
		}
		return nil
	})
	sort.Strings(t.kustomizations)
	return t, err
}

// memFS mirrors the tree in memory, each kustomization asking for origin annotations, so every
// rendered object names the file it came from (the tree on disk is not changed).
func (t *tree) memFS() (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	for rel, data := range t.files {
		if kustomizationNames[filepath.Base(rel)] && !bytes.Contains(data, []byte("buildMetadata:")) {
			data = append(bytes.TrimRight(append([]byte{}, data...), "\n"), []byte("\nbuildMetadata: [originAnnotations]\n")...)
		}
		if err := mem.WriteFile(memRoot+"/"+rel, data); err != nil {
			return nil, err
		}
	}
	return mem, nil
}

// rendered is one object of a kustomize build, with the file it came from.
type rendered struct {
	Source string // relative to root
	YAML   []byte
}

const originAnnotation = "config.kubernetes.io/origin"

// render builds the kustomization in dir (relative to root) as `kubectl apply -k` would.
func (t *tree) render(mem filesys.FileSystem, dir string) ([]rendered, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(mem, memRoot+"/"+dir)
	if err != nil {
		return nil, errors.New(strings.ReplaceAll(err.Error(), memRoot+"/", ""))
	}
	return t.objects(m, dir)
}

func (t *tree) objects(m resmap.ResMap, dir string) ([]rendered, error) {
	var out []rendered
	for _, r := range m.Resources() {
		source := dir + "/kustomization.yaml"
		if origin, err := r.GetOrigin(); err == nil && origin != nil {
			if origin.Path != "" {
				source = filepath.ToSlash(filepath.Clean(filepath.Join(dir, origin.Path)))
			} else if origin.ConfiguredIn != "" {
				source = filepath.ToSlash(filepath.Clean(filepath.Join(dir, origin.ConfiguredIn)))
			}
		}
		annotations := r.GetAnnotations()
		delete(annotations, originAnnotation)
		if err := r.SetAnnotations(annotations); err != nil {
			return nil, err
		}
		data, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		out = append(out, rendered{Source: source, YAML: data})
	}
	return out, nil
}

// documents splits a YAML stream into its documents (empty ones dropped).
func documents(data []byte) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

// yamlFiles lists the manifest files (not kustomizations) in a stable order.
func (t *tree) yamlFiles() []string {
	var names []string
	for rel := range t.files {
		ext := filepath.Ext(rel)
		if (ext == ".yaml" || ext == ".yml") && !kustomizationNames[filepath.Base(rel)] {
			names = append(names, rel)
		}
	}
	sort.Strings(names)
	return names
}

func describeDoc(index int, d *decoded) string {
	if d == nil || d.Name == "" {
		return fmt.Sprintf("document %d", index+1)
	}
	return d.id()
}
