package main

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// object is a decoded object of one rendered kustomization, with the file it came from.
type object struct {
	decoded
	Source string
}

// podTemplate is the pod template of a workload, with where it sits in its object.
type podTemplate struct {
	owner    object
	field    string // "spec.template"
	template *corev1.PodTemplateSpec
}

// problem is one finding: the file, the object and the field it is about.
type problem struct {
	Source, Object, Field, Message string
}

func (p problem) String() string {
	return fmt.Sprintf("%s: %s: %s: %s", p.Source, p.Object, p.Field, p.Message)
}

type checker struct {
	objects   []object
	templates []podTemplate
	problems  []problem
}

func (c *checker) report(o object, field, format string, args ...any) {
	c.problems = append(c.problems, problem{o.Source, o.id(), field, fmt.Sprintf(format, args...)})
}

// check runs the semantic rules over one rendered kustomization.
func check(objects []object) []problem {
	c := &checker{objects: objects}
	for _, o := range objects {
		switch v := o.Object.(type) {
		case *appsv1.Deployment:
			c.templates = append(c.templates, podTemplate{o, "spec.template", &v.Spec.Template})
		case *batchv1.Job:
			c.templates = append(c.templates, podTemplate{o, "spec.template", &v.Spec.Template})
		}
	}
	for _, o := range objects {
		switch v := o.Object.(type) {
		case *appsv1.Deployment:
			c.deployment(o, v)
		case *batchv1.Job:
			c.job(o, v)
		case *corev1.Service:
			c.service(o, v)
		case *policyv1.PodDisruptionBudget:
			c.selects(o, "spec.selector", v.Spec.Selector)
		case *networkingv1.NetworkPolicy:
			c.networkPolicy(o, v)
		case *networkingv1.Ingress:
			c.ingress(o, v)
		}
	}
	for _, t := range c.templates {
		c.podSpec(t)
	}
	return c.problems
}

func (c *checker) deployment(o object, d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		c.report(o, "spec.replicas", "must be set (the default, 1, leaves no replica during a restart)")
	}
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels)+len(d.Spec.Selector.MatchExpressions) == 0 {
		c.report(o, "spec.selector", "must be set")
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		c.report(o, "spec.selector", "%v", err)
		return
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		c.report(o, "spec.selector", "does not match spec.template.metadata.labels %v", d.Spec.Template.Labels)
	}
	for i, ctr := range d.Spec.Template.Spec.Containers {
		field := fmt.Sprintf("spec.template.spec.containers[%d]", i)
		c.probe(o, ctr, field+".readinessProbe", ctr.ReadinessProbe, "/ready")
		c.probe(o, ctr, field+".livenessProbe", ctr.LivenessProbe, "/health")
	}
}

func (c *checker) probe(o object, ctr corev1.Container, field string, p *corev1.Probe, path string) {
	if p == nil || p.HTTPGet == nil {
		c.report(o, field, "must be an httpGet probe of %s", path)
		return
	}
	if p.HTTPGet.Path != path {
		c.report(o, field+".httpGet.path", "is %q, want %q", p.HTTPGet.Path, path)
	}
	if _, ok := containerPort(ctr, p.HTTPGet.Port); !ok {
		c.report(o, field+".httpGet.port", "%q is not a port of container %q", p.HTTPGet.Port.String(), ctr.Name)
	}
}

// job: the only Job here is `qmtl migrate`, which must never run as several pods at once.
func (c *checker) job(o object, j *batchv1.Job) {
	if j.Spec.Parallelism != nil && *j.Spec.Parallelism != 1 {
		c.report(o, "spec.parallelism", "is %d: a migration Job runs one pod at a time (1)", *j.Spec.Parallelism)
	}
	if j.Spec.Completions != nil && *j.Spec.Completions != 1 {
		c.report(o, "spec.completions", "is %d: a migration Job completes once (1)", *j.Spec.Completions)
	}
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever && j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		c.report(o, "spec.template.spec.restartPolicy", "must be Never or OnFailure")
	}
}

func (c *checker) podSpec(t podTemplate) {
	spec := t.template.Spec
	if len(spec.Containers) == 0 {
		c.report(t.owner, t.field+".spec.containers", "must not be empty")
	}
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	for i, ctr := range spec.Containers {
		field := fmt.Sprintf("%s.spec.containers[%d]", t.field, i)
		if ctr.Image == "" {
			c.report(t.owner, field+".image", "must be set")
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := ctr.Resources.Requests[name]; !ok {
				c.report(t.owner, field+".resources.requests."+string(name), "must be set")
			}
			if _, ok := ctr.Resources.Limits[name]; !ok {
				c.report(t.owner, field+".resources.limits."+string(name), "must be set")
			}
		}
		seen := map[string]bool{}
		for j, p := range ctr.Ports {
			pf := fmt.Sprintf("%s.ports[%d].name", field, j)
			if p.Name == "" {
				c.report(t.owner, pf, "every container port must be named (Services and probes refer to it by name)")
			} else if seen[p.Name] {
				c.report(t.owner, pf, "%q is used twice", p.Name)
			}
			seen[p.Name] = true
		}
		ctrNonRoot := ctr.SecurityContext != nil && ctr.SecurityContext.RunAsNonRoot != nil && *ctr.SecurityContext.RunAsNonRoot
		if !podNonRoot && !ctrNonRoot {
			c.report(t.owner, field+".securityContext.runAsNonRoot", "must be true (in the pod's or the container's securityContext)")
		}
		for j, from := range ctr.EnvFrom {
			if from.ConfigMapRef != nil && !optional(from.ConfigMapRef.Optional) {
				if c.configMap(t.owner.Namespace, from.ConfigMapRef.Name) == nil {
					c.report(t.owner, fmt.Sprintf("%s.envFrom[%d].configMapRef.name", field, j), "no ConfigMap %q in this kustomization", from.ConfigMapRef.Name)
				}
			}
		}
		for j, env := range ctr.Env {
			if env.ValueFrom == nil || env.ValueFrom.ConfigMapKeyRef == nil || optional(env.ValueFrom.ConfigMapKeyRef.Optional) {
				continue
			}
			ref := env.ValueFrom.ConfigMapKeyRef
			ef := fmt.Sprintf("%s.env[%d].valueFrom.configMapKeyRef", field, j)
			if cm := c.configMap(t.owner.Namespace, ref.Name); cm == nil {
				c.report(t.owner, ef+".name", "no ConfigMap %q in this kustomization", ref.Name)
			} else if _, ok := cm.Data[ref.Key]; !ok {
				c.report(t.owner, ef+".key", "ConfigMap %q has no key %q", ref.Name, ref.Key)
			}
		}
	}
	c.scrapeAnnotations(t)
}

// scrapeAnnotations: Prometheus reads /metrics on the internal listener only.
func (c *checker) scrapeAnnotations(t podTemplate) {
	ann := t.template.Annotations
	if ann["prometheus.io/scrape"] != "true" {
		return
	}
	field := t.field + ".metadata.annotations"
	if ann["prometheus.io/path"] != "/metrics" {
		c.report(t.owner, field+"[prometheus.io/path]", "is %q, want /metrics", ann["prometheus.io/path"])
	}
	port, err := strconv.Atoi(ann["prometheus.io/port"])
	if err != nil {
		c.report(t.owner, field+"[prometheus.io/port]", "%q is not a port number", ann["prometheus.io/port"])
		return
	}
	for _, ctr := range t.template.Spec.Containers {
		for _, p := range ctr.Ports {
			if p.Name == "internal" && int(p.ContainerPort) != port {
				c.report(t.owner, field+"[prometheus.io/port]", "is %d, but the internal listener (which alone serves /metrics) is %d", port, p.ContainerPort)
			}
		}
	}
}

func optional(b *bool) bool { return b != nil && *b }

func (c *checker) configMap(namespace, name string) *corev1.ConfigMap {
	for _, o := range c.objects {
		if cm, ok := o.Object.(*corev1.ConfigMap); ok && o.Name == name && o.Namespace == namespace {
			return cm
		}
	}
	return nil
}

// selected returns the pod templates in o's namespace whose labels sel matches.
func (c *checker) selected(namespace string, sel labels.Selector) []podTemplate {
	var out []podTemplate
	for _, t := range c.templates {
		if t.owner.Namespace == namespace && sel.Matches(labels.Set(t.template.Labels)) {
			out = append(out, t)
		}
	}
	return out
}

func (c *checker) selects(o object, field string, s *metav1.LabelSelector) []podTemplate {
	if s == nil {
		c.report(o, field, "must be set")
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		c.report(o, field, "%v", err)
		return nil
	}
	matched := c.selected(o.Namespace, sel)
	if len(matched) == 0 {
		c.report(o, field, "selects no pod template of this kustomization")
	}
	return matched
}

func containerPort(ctr corev1.Container, port intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, p := range ctr.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

func templatePort(t podTemplate, port intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, ctr := range t.template.Spec.Containers {
		if p, ok := containerPort(ctr, port); ok {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

func (c *checker) service(o object, s *corev1.Service) {
	if len(s.Spec.Selector) == 0 {
		c.report(o, "spec.selector", "must be set")
		return
	}
	matched := c.selects(o, "spec.selector", &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
	for i, p := range s.Spec.Ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		if p.Name == "" {
			c.report(o, field+".name", "every Service port must be named")
		}
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, t := range matched {
			if _, ok := templatePort(t, target); !ok {
				c.report(o, field+".targetPort", "%q is not a container port of %s (its ports: %s)", target.String(), t.owner.id(), portNames(t))
			}
		}
	}
}

func portNames(t podTemplate) string {
	var names []string
	for _, ctr := range t.template.Spec.Containers {
		for _, p := range ctr.Ports {
			names = append(names, fmt.Sprintf("%s=%d", p.Name, p.ContainerPort))
		}
	}
	return fmt.Sprint(names)
}

func (c *checker) networkPolicy(o object, n *networkingv1.NetworkPolicy) {
	matched := c.selects(o, "spec.podSelector", &n.Spec.PodSelector)
	for i, rule := range n.Spec.Ingress {
		for j, p := range rule.Ports {
			if p.Port == nil {
				continue
			}
			for _, t := range matched {
				if _, ok := templatePort(t, *p.Port); !ok {
					c.report(o, fmt.Sprintf("spec.ingress[%d].ports[%d].port", i, j), "%q is not a container port of %s", p.Port.String(), t.owner.id())
				}
			}
		}
	}
}

// ingress: only a container port named "public" may leave the cluster.
func (c *checker) ingress(o object, ing *networkingv1.Ingress) {
	if ing.Spec.DefaultBackend != nil {
		c.ingressBackend(o, "spec.defaultBackend", *ing.Spec.DefaultBackend)
	}
	for i, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for j, path := range rule.HTTP.Paths {
			c.ingressBackend(o, fmt.Sprintf("spec.rules[%d].http.paths[%d].backend", i, j), path.Backend)
		}
	}
}

func (c *checker) ingressBackend(o object, field string, b networkingv1.IngressBackend) {
	if b.Service == nil {
		c.report(o, field+".service", "must name a Service")
		return
	}
	var svc *corev1.Service
	for _, other := range c.objects {
		if s, ok := other.Object.(*corev1.Service); ok && other.Name == b.Service.Name && other.Namespace == o.Namespace {
			svc = s
		}
	}
	if svc == nil {
		c.report(o, field+".service.name", "no Service %q in this kustomization", b.Service.Name)
		return
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (b.Service.Port.Name != "" && p.Name == b.Service.Port.Name) || (b.Service.Port.Name == "" && p.Port == b.Service.Port.Number) {
			sp = p
		}
	}
	if sp == nil {
		c.report(o, field+".service.port", "Service %q has no such port", b.Service.Name)
		return
	}
	target := sp.TargetPort
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(sp.Port)
	}
	for _, t := range c.selected(o.Namespace, labels.SelectorFromSet(svc.Spec.Selector)) {
		if p, ok := templatePort(t, target); ok && p.Name != "public" {
			c.report(o, field+".service.port", "routes to container port %q of %s: an Ingress may expose only a public listener (internal listeners and gRPC serve every rpc)", p.Name, t.owner.id())
		}
	}
}
