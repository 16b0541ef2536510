package main

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// newTyped returns an empty object of the Kubernetes API type of apiVersion/kind. Only the kinds
// this tree uses are known: anything else is an error, so a typo in a kind is never waved through.
func newTyped(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/Namespace":
		return &corev1.Namespace{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "batch/v1/Job":
		return &batchv1.Job{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, true
	}
	return nil, false
}

// header is what is read before the type is known.
type header struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// decoded is one document decoded into its API type.
type decoded struct {
	Kind      string
	Name      string
	Namespace string
	Object    any
}

func (d decoded) id() string { return d.Kind + "/" + d.Name }

// decodeStrict decodes one YAML document into its API type as the API server's strict field
// validation does: duplicate keys, unknown fields and wrong types are all errors, each naming
// the field path. A document that is a kustomization returns (nil, nil).
func decodeStrict(doc []byte) (*decoded, []string) {
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, []string{fmt.Sprintf("not valid YAML: %v", err)}
	}
	var h header
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &h); err != nil {
		return nil, []string{fmt.Sprintf("apiVersion/kind/metadata: %v", cleanJSONError(err))}
	}
	if h.APIVersion == "" || h.Kind == "" {
		return nil, []string{"apiVersion and kind must be set"}
	}
	if strings.HasPrefix(h.APIVersion, "kustomize.config.k8s.io/") {
		return nil, nil
	}
	obj, ok := newTyped(h.APIVersion, h.Kind)
	if !ok {
		return nil, []string{fmt.Sprintf("apiVersion %q kind %q: not a type this validator knows (add it to newTyped)", h.APIVersion, h.Kind)}
	}
	strictErrs, err := sigsjson.UnmarshalStrict(data, obj, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	var problems []string
	if err != nil {
		msg := cleanJSONError(err)
		if strings.HasPrefix(msg, "quantities must match") {
			// resource.Quantity's own error names no field: find the value it refused.
			msg = badQuantities(data) + ": " + msg
		}
		problems = append(problems, msg)
	}
	for _, e := range strictErrs {
		problems = append(problems, cleanJSONError(e))
	}
	return &decoded{Kind: h.Kind, Name: h.Metadata.Name, Namespace: h.Metadata.Namespace, Object: obj}, problems
}

// cleanJSONError turns encoding/json's wording into "<field path>: <what>", the form every
// message of this validator has.
func cleanJSONError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	// cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32
	if i := strings.Index(msg, "Go struct field "); i >= 0 {
		rest := msg[i+len("Go struct field "):]
		if j := strings.Index(rest, " of type "); j >= 0 {
			field := rest[:j]
			if k := strings.Index(field, "."); k >= 0 {
				field = field[k+1:]
			}
			return fmt.Sprintf("%s: wrong type: %s, want %s", field, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg[:i]), "into")), rest[j+len(" of type "):])
		}
	}
	// unknown field "spec.template.spec.containers[0].imagePullPolcy"
	for _, what := range []string{"unknown field ", "duplicate field "} {
		if strings.HasPrefix(msg, what) {
			field := strings.Trim(strings.TrimPrefix(msg, what), `"`)
			return fmt.Sprintf("%s: %s", field, strings.TrimSpace(what))
		}
	}
	return msg
}

// badQuantities names the fields under resources' requests/limits (and emptyDir sizeLimit)
// whose values are not quantities.
func badQuantities(data []byte) string {
	var v any
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &v); err != nil {
		return "?"
	}
	var found []string
	var walk func(path string, v any, quantity bool)
	walk = func(path string, v any, quantity bool) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, child, quantity || k == "requests" || k == "limits" || k == "sizeLimit")
			}
		case []any:
			for i, child := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), child, quantity)
			}
		case string:
			if _, err := resource.ParseQuantity(x); quantity && err != nil {
				found = append(found, path)
			}
		}
	}
	walk("", v, false)
	if len(found) == 0 {
		return "?"
	}
	sort.Strings(found)
	return strings.Join(found, ", ")
}
