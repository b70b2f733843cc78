// Package kube runs berth tenant containers on Kubernetes through client-go.
//
// Per tenant container it makes, in one namespace: a StatefulSet of at most
// one pod (replicas 0 = stopped, 1 = started), a PersistentVolumeClaim for
// /data, a ClusterIP Service for the agent on :9000, a
// NetworkPolicy that admits ingress only from the control plane's pods, and a
// Secret with the tenant's environment (envFrom). Every object carries the
// berth.* labels the Docker driver uses; objects without
// berth.instance=<instance> are invisible to the driver.
//
// What does not map one to one is listed in docs/KUBERNETES.md: pids limits
// (no pod field: the kubelet's node-wide podPidsLimit applies; the value is
// recorded in an annotation), logs and stats (need a kubelet and the metrics
// API), and the agent address (a Service DNS name, so the control plane must
// run in the cluster or reach its Services).
package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/berth/berth"
)

var _ berth.Driver = (*Driver)(nil)

// Annotations that keep what labels cannot hold (values longer than 63
// characters or with characters labels refuse) and the driver's own state.
const (
	annName      = "berth.io/name"       // the container's berth name, verbatim
	annUser      = "berth.io/user"       // the user id, verbatim
	annPids      = "berth.io/pids-limit" // requested pids limit (not enforceable per pod)
	annStartedAt = "berth.io/started-at" // RFC 3339 (nanoseconds) of the last Start
	annStoppedAt = "berth.io/stopped-at" // RFC 3339 (nanoseconds) of the last Stop
	labelRole    = "berth.role"          // "tenant" on every tenant pod
)

// Fixed parts of every tenant pod, as in the Docker driver.
const (
	dataDir       = "/data"
	tenantUID     = int64(65534)
	containerName = "tenant"
	tmpSize       = "64Mi"
	maxLogBytes   = 8 << 20
	minMemory     = 6 << 20
	grace         = int64(10) // default terminationGracePeriodSeconds
)

// Options configure a Driver.
type Options struct {
	// Instance is the berth.instance label and the prefix of container names.
	// Lowercase letters, digits and single dashes, at most 40 characters.
	Instance string
	// Version is recorded as the berth.version label.
	Version string
	// Namespace holds every tenant object; it must exist.
	Namespace string
	// Config reaches the API server; nil means LoadConfig(Kubeconfig).
	Config *rest.Config
	// Kubeconfig is the KUBECONFIG value to use when Config is nil.
	Kubeconfig string
	// ControlPlaneLabels select the control plane's pods: the only pods a
	// tenant's NetworkPolicy admits. Nil means app.kubernetes.io/name=berth,
	// app.kubernetes.io/component=control-plane (what the Helm chart sets).
	ControlPlaneLabels map[string]string
	// StorageClass of the /data claims; empty means the cluster's default.
	StorageClass string
	// VolumeSize of the /data claims; zero means 1Gi.
	VolumeSize resource.Quantity
	// StartTimeout bounds how long Start (and Update when it re-creates the
	// pod) waits for the pod to run; zero means 3 minutes.
	StartTimeout time.Duration
	// Capacity is reported by Host when the driver may not list nodes (RBAC
	// limited to the namespace); zero means Host fails then.
	Capacity berth.HostInfo
}

// Driver implements berth.Driver on Kubernetes. It is safe for concurrent use.
type Driver struct {
	cs       kubernetes.Interface
	metrics  metricsclient.Interface
	host     string
	ns       string
	instance string
	version  string
	cpLabels map[string]string
	sc       string
	size     resource.Quantity
	startTO  time.Duration
	capacity berth.HostInfo
}

// LoadConfig returns the REST config of the kubeconfig file(s) named by
// kubeconfig (the KUBECONFIG syntax: paths joined by ':'); when that is empty,
// of ~/.kube/config if it exists, else the in-cluster service account.
func LoadConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.Precedence = filepath.SplitList(kubeconfig)
	if kubeconfig == "" {
		rules.Precedence = nil
		if _, err := os.Stat(rules.GetDefaultFilename()); err != nil {
			if c, err := rest.InClusterConfig(); err == nil {
				return c, nil
			}
		}
		rules.ExplicitPath = clientcmd.RecommendedHomeFile
	}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, berth.Wrap(berth.ErrInvalid, err, "kubernetes: no usable kubeconfig (KUBECONFIG) and not running in a cluster")
	}
	return c, nil
}

// New returns a driver for the given instance. It does not contact the API
// server: calls made while it is down fail with berth.ErrUnavailable.
func New(o Options) (*Driver, error) {
	if err := validateInstance(o.Instance); err != nil {
		return nil, err
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return nil, berth.Errorf(berth.ErrInvalid, "kubernetes: namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
	}
	cfg := o.Config
	if cfg == nil {
		var err error
		if cfg, err = LoadConfig(o.Kubeconfig); err != nil {
			return nil, err
		}
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "berth/" + o.Version
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, berth.Wrap(berth.ErrInvalid, err, "kubernetes: configure client")
	}
	mc, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return nil, berth.Wrap(berth.ErrInvalid, err, "kubernetes: configure metrics client")
	}
	d := &Driver{
		cs: cs, metrics: mc, host: cfg.Host, ns: o.Namespace, instance: o.Instance, version: o.Version,
		cpLabels: o.ControlPlaneLabels, sc: o.StorageClass, size: o.VolumeSize, startTO: o.StartTimeout, capacity: o.Capacity,
	}
	if d.cpLabels == nil {
		d.cpLabels = map[string]string{"app.kubernetes.io/name": "berth", "app.kubernetes.io/component": "control-plane"}
	}
	if d.size.IsZero() {
		d.size = resource.MustParse("1Gi")
	}
	if d.startTO == 0 {
		d.startTO = 3 * time.Minute
	}
	return d, nil
}

func validateInstance(s string) error {
	bad := len(s) == 0 || len(s) > 40 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--")
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			bad = true
		}
	}
	if bad {
		return berth.Errorf(berth.ErrInvalid, "kubernetes: instance %q must be 1-40 of [a-z0-9-], not starting or ending with '-'", s)
	}
	return nil
}

// Namespace returns the namespace of the driver's objects.
func (d *Driver) Namespace() string { return d.ns }

// Clientset returns the client the driver uses.
func (d *Driver) Clientset() kubernetes.Interface { return d.cs }

// objectName maps a berth container name (which may hold uppercase letters
// and underscores, and be long) to a DNS-1035 label that leaves room for the
// StatefulSet's pod and revision suffixes. Names that already fit are kept.
func objectName(name string) string {
	const max = 47
	if len(name) <= max && len(validation.IsDNS1035Label(name)) == 0 {
		return name
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 38 {
		s = strings.TrimRight(s[:38], "-")
	}
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "b" + s
	}
	h := sha256.Sum256([]byte(name))
	return s + "-" + hex.EncodeToString(h[:4])
}

// labelValue returns v when Kubernetes accepts it as a label value, else a
// sanitised, shortened form with a hash (the verbatim value is kept in an
// annotation).
func labelValue(v string) string {
	if len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	var b strings.Builder
	for _, r := range v {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := strings.Trim(b.String(), "-_.")
	if len(s) > 50 {
		s = strings.Trim(s[:50], "-_.")
	}
	h := sha256.Sum256([]byte(v))
	if s == "" {
		return "h" + hex.EncodeToString(h[:6])
	}
	return s + "-" + hex.EncodeToString(h[:6])
}

func secretName(obj string) string { return obj + "-env" }
func claimName(obj string) string  { return "data-" + obj + "-0" }
func podName(obj string) string    { return obj + "-0" }

// agentAddr is the Service's cluster DNS name and the agent port.
func (d *Driver) agentAddr(obj string) string {
	return fmt.Sprintf("%s.%s.svc:%d", obj, d.ns, berth.AgentPort)
}

// AgentAddrOf returns the address of a container's agent (its Service's
// cluster DNS name and port 9000), as Inspect reports it, without asking the
// API server. The control plane must resolve and reach cluster Services.
func (d *Driver) AgentAddrOf(name string) string { return d.agentAddr(objectName(name)) }

// Ping reports whether the API server answers; ErrUnavailable when it does not.
func (d *Driver) Ping(ctx context.Context) error {
	body, err := d.cs.Discovery().RESTClient().Get().AbsPath("/readyz").Timeout(5 * time.Second).DoRaw(ctx)
	if err != nil {
		return d.classify(err, "ping kubernetes API server")
	}
	if s := strings.TrimSpace(string(body)); s != "ok" {
		return berth.Errorf(berth.ErrUnavailable, "kubernetes API server not ready: %s", s)
	}
	return nil
}

// Host returns what one tenant pod can get: the CPUs of the largest node and
// the allocatable memory of all nodes, with the API server's version. It
// falls back to Options.Capacity when the driver may not list nodes.
func (d *Driver) Host(ctx context.Context) (berth.HostInfo, error) {
	v, err := d.cs.Discovery().ServerVersion()
	if err != nil {
		return berth.HostInfo{}, d.classify(err, "query kubernetes version")
	}
	h := berth.HostInfo{EngineVersion: "kubernetes " + v.GitVersion, APIVersion: "apps/v1"}
	nodes, err := d.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) && d.capacity.CPUs > 0 {
			h.CPUs, h.MemoryBytes = d.capacity.CPUs, d.capacity.MemoryBytes
			return h, nil
		}
		return berth.HostInfo{}, d.classify(err, "list nodes")
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable {
			continue
		}
		a := n.Status.Allocatable
		if c := int(a.Cpu().Value()); c > h.CPUs {
			h.CPUs = c
		}
		h.MemoryBytes += a.Memory().Value()
	}
	if h.CPUs == 0 {
		return berth.HostInfo{}, berth.Errorf(berth.ErrCapacity, "kubernetes: no schedulable node")
	}
	return h, nil
}

// checkLimits refuses limits no pod could get: the pod would stay Pending.
func (d *Driver) checkLimits(ctx context.Context, l berth.Limits) error {
	switch {
	case l.MemoryBytes < minMemory:
		return berth.Errorf(berth.ErrInvalid, "memory limit must be at least %d bytes", minMemory)
	case l.PidsLimit <= 0:
		return berth.Errorf(berth.ErrInvalid, "pids limit must be positive")
	case !(l.CPUs > 0) || l.CPUs > 1024 || math.IsInf(l.CPUs, 0):
		return berth.Errorf(berth.ErrInvalid, "cpus must be in (0, 1024]")
	}
	h, err := d.Host(ctx)
	if err != nil {
		return nil // the scheduler decides; nothing to check against
	}
	if l.CPUs > float64(h.CPUs) {
		return berth.Errorf(berth.ErrInvalid, "cpus %g exceed the largest node's %d", l.CPUs, h.CPUs)
	}
	return nil
}

func resources(l berth.Limits) corev1.ResourceRequirements {
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(math.Round(l.CPUs*1000)), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(l.MemoryBytes, resource.BinarySI),
	}
	// requests = limits: Guaranteed QoS, like the Docker driver's hard limits.
	return corev1.ResourceRequirements{Limits: rl, Requests: rl.DeepCopy()}
}

func (d *Driver) labels(spec berth.ContainerSpec) map[string]string {
	l := make(map[string]string, len(spec.Labels)+6)
	for k, v := range spec.Labels {
		if len(validation.IsQualifiedName(k)) == 0 {
			l[k] = labelValue(v)
		}
	}
	l[berth.LabelInstance] = d.instance
	l[berth.LabelUser] = labelValue(spec.UserID)
	l[berth.LabelPlan] = labelValue(spec.Plan)
	l[berth.LabelVersion] = labelValue(d.version)
	l[berth.LabelName] = labelValue(spec.Name)
	return l
}

// selector picks the one pod of a container.
func (d *Driver) selector(name string) map[string]string {
	return map[string]string{berth.LabelInstance: d.instance, berth.LabelName: labelValue(name), labelRole: "tenant"}
}

func boolp(b bool) *bool { return &b }

func (d *Driver) statefulSet(spec berth.ContainerSpec, obj string) *appsv1.StatefulSet {
	labels := d.labels(spec)
	podLabels := d.labels(spec)
	podLabels[labelRole] = "tenant"
	ann := map[string]string{annName: spec.Name, annUser: spec.UserID, annPids: strconv.FormatInt(spec.Limits.PidsLimit, 10)}
	uid := tenantUID
	g := grace
	claim := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: map[string]string{berth.LabelInstance: d.instance}},
		Spec:       d.claimSpec(),
	}
	zero := int32(0)
	tmp := resource.MustParse(tmpSize)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: obj, Namespace: d.ns, Labels: labels, Annotations: ann},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &zero, // created, not started
			ServiceName:         obj,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			// OnDelete: a plan change is applied to the running pod in place
			// (pods/resize) or by deleting it; the controller never rolls it
			// behind the driver's back.
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Selector: &metav1.LabelSelector{MatchLabels: d.selector(spec.Name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: map[string]string{annName: spec.Name, annUser: spec.UserID}},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  boolp(false),
					EnableServiceLinks:            boolp(false),
					TerminationGracePeriodSeconds: &g,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   boolp(true),
						RunAsUser:      &uid,
						RunAsGroup:     &uid,
						FSGroup:        &uid,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            containerName,
						Image:           spec.Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Ports:           []corev1.ContainerPort{{Name: "agent", ContainerPort: berth.AgentPort, Protocol: corev1.ProtocolTCP}},
						EnvFrom:         []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secretName(obj)}}}},
						Resources:       resources(spec.Limits),
						ResizePolicy: []corev1.ContainerResizePolicy{
							{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired},
							{ResourceName: corev1.ResourceMemory, RestartPolicy: corev1.NotRequired},
						},
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             boolp(true),
							RunAsUser:                &uid,
							RunAsGroup:               &uid,
							ReadOnlyRootFilesystem:   boolp(true),
							AllowPrivilegeEscalation: boolp(false),
							Privileged:               boolp(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: dataDir}, {Name: "tmp", MountPath: "/tmp"}},
					}},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{
						EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &tmp}}}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{claim},
		},
	}
}

func (d *Driver) claimSpec() corev1.PersistentVolumeClaimSpec {
	s := corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: d.size}},
	}
	if d.sc != "" {
		s.StorageClassName = &d.sc
	}
	return s
}

func ownerRef(sts *appsv1.StatefulSet) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID}}
}

// Create makes the StatefulSet (scaled to 0), the /data claim (kept when it
// exists), the Secret, the Service and the NetworkPolicy. The three last are
// owned by the StatefulSet, so the garbage collector removes them with it
// even if Remove is never called.
func (d *Driver) Create(ctx context.Context, spec berth.ContainerSpec) (berth.Instance, error) {
	if !strings.HasPrefix(spec.Name, d.instance+"-") || len(spec.Name) > 253 {
		return berth.Instance{}, berth.Errorf(berth.ErrInvalid, "container name %q must start with %q", spec.Name, d.instance+"-")
	}
	if spec.Image == "" {
		return berth.Instance{}, berth.Errorf(berth.ErrInvalid, "image is required")
	}
	if spec.AgentPort < 0 || spec.AgentPort > 65535 {
		return berth.Instance{}, berth.Errorf(berth.ErrInvalid, "agent port %d out of range", spec.AgentPort)
	}
	if err := d.checkLimits(ctx, spec.Limits); err != nil {
		return berth.Instance{}, err
	}
	obj := objectName(spec.Name)
	labels := d.labels(spec)

	created, err := d.ensureClaim(ctx, spec, obj)
	if err != nil {
		return berth.Instance{}, err
	}
	sts, err := d.cs.AppsV1().StatefulSets(d.ns).Create(ctx, d.statefulSet(spec, obj), metav1.CreateOptions{})
	if err != nil {
		// On AlreadyExists the claim stays: a concurrent Create of the same
		// name may have won the StatefulSet and relies on it.
		if created && !apierrors.IsAlreadyExists(err) {
			_ = d.cs.CoreV1().PersistentVolumeClaims(d.ns).Delete(context.WithoutCancel(ctx), claimName(obj), metav1.DeleteOptions{})
		}
		return berth.Instance{}, d.classify(err, "create statefulset for "+spec.Name)
	}
	undo := func() {
		bg := metav1.DeletePropagationBackground
		c := context.WithoutCancel(ctx)
		_ = d.cs.AppsV1().StatefulSets(d.ns).Delete(c, obj, metav1.DeleteOptions{PropagationPolicy: &bg})
		d.removeParts(c, obj)
		if created {
			_ = d.cs.CoreV1().PersistentVolumeClaims(d.ns).Delete(c, claimName(obj), metav1.DeleteOptions{})
		}
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: d.ns, Labels: labels, OwnerReferences: ownerRef(sts),
			Annotations: map[string]string{annName: spec.Name}}
	}
	sec := &corev1.Secret{ObjectMeta: meta(secretName(obj)), Type: corev1.SecretTypeOpaque, StringData: spec.Env}
	svc := &corev1.Service{ObjectMeta: meta(obj), Spec: corev1.ServiceSpec{
		Type:     corev1.ServiceTypeClusterIP,
		Selector: d.selector(spec.Name),
		Ports:    []corev1.ServicePort{{Name: "agent", Port: berth.AgentPort, TargetPort: intstr.FromInt32(berth.AgentPort), Protocol: corev1.ProtocolTCP}},
	}}
	port := intstr.FromInt32(berth.AgentPort)
	tcp := corev1.ProtocolTCP
	np := &netv1.NetworkPolicy{ObjectMeta: meta(obj), Spec: netv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: d.selector(spec.Name)},
		PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeIngress},
		// Only the control plane may reach the agent; every other pod
		// (tenants included) is denied.
		Ingress: []netv1.NetworkPolicyIngressRule{{
			From:  []netv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: d.cpLabels}}},
			Ports: []netv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		}},
	}}
	if _, err := d.cs.CoreV1().Secrets(d.ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		undo()
		return berth.Instance{}, d.classify(err, "create secret for "+spec.Name)
	}
	if _, err := d.cs.CoreV1().Services(d.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		undo()
		return berth.Instance{}, d.classify(err, "create service for "+spec.Name)
	}
	if _, err := d.cs.NetworkingV1().NetworkPolicies(d.ns).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		undo()
		return berth.Instance{}, d.classify(err, "create network policy for "+spec.Name)
	}
	return d.toInstance(sts, nil), nil
}

// ensureClaim creates the /data claim unless this instance's claim of that
// name exists (re-creation keeps the data). The StatefulSet controller
// adopts it by name.
func (d *Driver) ensureClaim(ctx context.Context, spec berth.ContainerSpec, obj string) (created bool, err error) {
	name := claimName(obj)
	pvcs := d.cs.CoreV1().PersistentVolumeClaims(d.ns)
	if c, err := pvcs.Get(ctx, name, metav1.GetOptions{}); err == nil {
		if c.Labels[berth.LabelInstance] != d.instance {
			return false, berth.Errorf(berth.ErrConflict, "volume claim %s belongs to another instance", name)
		}
		if c.DeletionTimestamp != nil {
			return false, berth.Errorf(berth.ErrConflict, "volume claim %s is being deleted", name)
		}
		return false, nil
	} else if !apierrors.IsNotFound(err) {
		return false, d.classify(err, "inspect volume claim "+name)
	}
	sel := d.selector(spec.Name)
	delete(sel, labelRole)
	labels := map[string]string{berth.LabelUser: labelValue(spec.UserID)}
	for k, v := range sel {
		labels[k] = v
	}
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.ns, Labels: labels, Annotations: map[string]string{annName: spec.Name}},
		Spec:       d.claimSpec(),
	}
	if _, err := pvcs.Create(ctx, c, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, nil // a concurrent Create of the same name made it; the StatefulSet decides
		}
		return false, d.classify(err, "create volume claim "+name)
	}
	return true, nil
}

// removeParts deletes the Secret, Service and NetworkPolicy of obj.
func (d *Driver) removeParts(ctx context.Context, obj string) error {
	var first error
	keep := func(err error, what string) {
		if err != nil && !apierrors.IsNotFound(err) && first == nil {
			first = d.classify(err, "delete "+what+" "+obj)
		}
	}
	keep(d.cs.NetworkingV1().NetworkPolicies(d.ns).Delete(ctx, obj, metav1.DeleteOptions{}), "network policy")
	keep(d.cs.CoreV1().Services(d.ns).Delete(ctx, obj, metav1.DeleteOptions{}), "service")
	keep(d.cs.CoreV1().Secrets(d.ns).Delete(ctx, secretName(obj), metav1.DeleteOptions{}), "secret")
	return first
}

// lookup returns this instance's StatefulSet of the named container.
func (d *Driver) lookup(ctx context.Context, name string) (*appsv1.StatefulSet, error) {
	sts, err := d.cs.AppsV1().StatefulSets(d.ns).Get(ctx, objectName(name), metav1.GetOptions{})
	if err != nil {
		return nil, d.classify(err, "inspect container "+name)
	}
	if sts.Labels[berth.LabelInstance] != d.instance || sts.Annotations[annName] != name || sts.DeletionTimestamp != nil {
		return nil, berth.Errorf(berth.ErrNotFound, "container %s not found", name)
	}
	return sts, nil
}

// pod returns the StatefulSet's pod, nil when there is none.
func (d *Driver) pod(ctx context.Context, sts *appsv1.StatefulSet) (*corev1.Pod, error) {
	p, err := d.cs.CoreV1().Pods(d.ns).Get(ctx, podName(sts.Name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.classify(err, "inspect pod of "+sts.Annotations[annName])
	}
	if p.Labels[berth.LabelInstance] != d.instance {
		return nil, nil
	}
	return p, nil
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// toInstance maps a StatefulSet and its pod (nil if none) to an Instance.
// State: "created" (never started), "running", "restarting" (started, pod
// not running yet or crash-looping), "exited" (stopped or terminated).
func (d *Driver) toInstance(sts *appsv1.StatefulSet, p *corev1.Pod) berth.Instance {
	obj := sts.Name
	in := berth.Instance{
		ID:        string(sts.UID),
		Name:      sts.Annotations[annName],
		UserID:    sts.Annotations[annUser],
		Plan:      sts.Labels[berth.LabelPlan],
		Labels:    sts.Labels,
		CreatedAt: sts.CreationTimestamp.Time,
		AgentAddr: d.agentAddr(obj),
		Volume:    claimName(obj),
		Network:   d.ns,
	}
	if cs := sts.Spec.Template.Spec.Containers; len(cs) > 0 {
		c := cs[0]
		in.Image = c.Image
		in.Limits = limitsOf(c.Resources)
	}
	if p != nil && len(p.Spec.Containers) > 0 && p.DeletionTimestamp == nil {
		// The pod's resources are what applies now (a resize may be pending).
		in.Limits = limitsOf(p.Spec.Containers[0].Resources)
	}
	in.Limits.PidsLimit, _ = strconv.ParseInt(sts.Annotations[annPids], 10, 64)
	started, stopped := parseTime(sts.Annotations[annStartedAt]), parseTime(sts.Annotations[annStoppedAt])
	in.StartedAt = started
	in.FinishedAt = stopped
	replicas := int32(1)
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}
	switch {
	case replicas == 0 && started.IsZero():
		in.State = "created"
	case replicas == 0:
		in.State = "exited"
	case p == nil || p.DeletionTimestamp != nil:
		in.State = "restarting"
	default:
		in.State = "restarting"
		for _, cst := range p.Status.ContainerStatuses {
			if cst.Name != containerName {
				continue
			}
			if last := cst.LastTerminationState.Terminated; last != nil {
				in.ExitCode = int(last.ExitCode)
				in.OOMKilled = last.Reason == "OOMKilled"
				in.FinishedAt = later(in.FinishedAt, last.FinishedAt.Time)
			}
			switch {
			case cst.State.Running != nil:
				in.State, in.Running = "running", true
				in.StartedAt = later(in.StartedAt, cst.State.Running.StartedAt.Time)
			case cst.State.Terminated != nil:
				t := cst.State.Terminated
				in.State, in.ExitCode, in.OOMKilled = "exited", int(t.ExitCode), t.Reason == "OOMKilled"
				in.FinishedAt = later(in.FinishedAt, t.FinishedAt.Time)
				in.Error = t.Message
			case cst.State.Waiting != nil:
				in.Error = strings.TrimSpace(cst.State.Waiting.Reason + " " + cst.State.Waiting.Message)
			}
		}
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			in.State, in.Running = "exited", false
		}
		if in.Error == "" && p.Status.Phase == corev1.PodPending {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					in.Error = strings.TrimSpace(c.Reason + " " + c.Message)
				}
			}
		}
	}
	return in
}

func limitsOf(r corev1.ResourceRequirements) berth.Limits {
	var l berth.Limits
	if q, ok := r.Limits[corev1.ResourceCPU]; ok {
		l.CPUs = float64(q.MilliValue()) / 1000
	}
	if q, ok := r.Limits[corev1.ResourceMemory]; ok {
		l.MemoryBytes = q.Value()
	}
	return l
}

// Inspect returns the container's current state.
func (d *Driver) Inspect(ctx context.Context, name string) (berth.Instance, error) {
	sts, err := d.lookup(ctx, name)
	if err != nil {
		return berth.Instance{}, err
	}
	p, err := d.pod(ctx, sts)
	if err != nil {
		return berth.Instance{}, err
	}
	return d.toInstance(sts, p), nil
}

// List returns every container of this instance, by name.
func (d *Driver) List(ctx context.Context) ([]berth.Instance, error) {
	sel := berth.LabelInstance + "=" + d.instance
	sets, err := d.cs.AppsV1().StatefulSets(d.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, d.classify(err, "list statefulsets")
	}
	pods, err := d.cs.CoreV1().Pods(d.ns).List(ctx, metav1.ListOptions{LabelSelector: sel + "," + labelRole + "=tenant"})
	if err != nil {
		return nil, d.classify(err, "list pods")
	}
	byName := make(map[string]*corev1.Pod, len(pods.Items))
	for i := range pods.Items {
		byName[pods.Items[i].Name] = &pods.Items[i]
	}
	out := make([]berth.Instance, 0, len(sets.Items))
	for i := range sets.Items {
		s := &sets.Items[i]
		if s.Annotations[annName] == "" || s.DeletionTimestamp != nil {
			continue
		}
		out = append(out, d.toInstance(s, byName[podName(s.Name)]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// scale sets the replicas and one timestamp annotation in one merge patch.
func (d *Driver) scale(ctx context.Context, sts *appsv1.StatefulSet, replicas int, ann string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"replicas":%d}}`, ann, time.Now().UTC().Format(time.RFC3339Nano), replicas)
	_, err := d.cs.AppsV1().StatefulSets(d.ns).Patch(ctx, sts.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return d.classify(err, "scale "+sts.Annotations[annName])
}

// Start scales the StatefulSet to one and waits (at most StartTimeout) for
// the pod to run. It returns nil if it is already running.
func (d *Driver) Start(ctx context.Context, name string) error {
	sts, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 || sts.Annotations[annStartedAt] == "" {
		if err := d.scale(ctx, sts, 1, annStartedAt); err != nil {
			return err
		}
	}
	return d.waitRunning(ctx, name)
}

// waitRunning polls until the container's pod runs.
func (d *Driver) waitRunning(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, d.startTO)
	defer cancel()
	var last berth.Instance
	for {
		in, err := d.Inspect(ctx, name)
		if err == nil && in.Running {
			return nil
		}
		if err != nil && ctx.Err() == nil && !isRetryable(err) {
			return err
		}
		if err == nil {
			last = in
		}
		select {
		case <-ctx.Done():
			why := last.Error
			if why == "" {
				why = "state " + last.State
			}
			return berth.Wrap(berth.ErrUnavailable, ctx.Err(), fmt.Sprintf("start %s: pod not running (%s)", name, why))
		case <-time.After(150 * time.Millisecond):
		}
	}
}

func isRetryable(err error) bool {
	return berth.ErrorCode(err) == "unavailable"
}

// Stop scales the StatefulSet to zero, waits for the pod to go and deletes
// it without grace after timeout. It returns nil if the container is already
// stopped or does not exist.
func (d *Driver) Stop(ctx context.Context, name string, timeout time.Duration) error {
	sts, err := d.lookup(ctx, name)
	if err != nil {
		if berth.ErrorCode(err) == "not_found" {
			return nil
		}
		return err
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 0 {
		if err := d.scale(ctx, sts, 0, annStoppedAt); err != nil {
			return err
		}
	}
	return d.waitPodGone(ctx, sts, timeout)
}

func (d *Driver) waitPodGone(ctx context.Context, sts *appsv1.StatefulSet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	killed := false
	for {
		p, err := d.pod(ctx, sts)
		if err != nil {
			return err
		}
		if p == nil {
			return nil
		}
		if !killed && time.Now().After(deadline) {
			zero := int64(0)
			err := d.cs.CoreV1().Pods(d.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			if err != nil && !apierrors.IsNotFound(err) {
				return d.classify(err, "kill pod of "+sts.Annotations[annName])
			}
			killed = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", sts.Annotations[annName], ctx.Err())
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// Restart stops (with timeout) and starts the container.
func (d *Driver) Restart(ctx context.Context, name string, timeout time.Duration) error {
	if _, err := d.lookup(ctx, name); err != nil {
		return err
	}
	if err := d.Stop(ctx, name, timeout); err != nil {
		return err
	}
	return d.Start(ctx, name)
}

// Remove deletes the StatefulSet, its pod, Secret, Service and NetworkPolicy,
// and the /data claim when removeVolume is set. It returns nil if they do
// not exist.
func (d *Driver) Remove(ctx context.Context, name string, removeVolume bool) error {
	obj := objectName(name)
	sts, err := d.lookup(ctx, name)
	switch {
	case err == nil:
		// Background: the StatefulSet goes at once (a Create of the same name
		// may follow); the pod is deleted here, the GC would do it later.
		bg := metav1.DeletePropagationBackground
		zero := int64(0)
		if err := d.cs.AppsV1().StatefulSets(d.ns).Delete(ctx, obj, metav1.DeleteOptions{PropagationPolicy: &bg,
			Preconditions: &metav1.Preconditions{UID: &sts.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return d.classify(err, "delete statefulset "+name)
		}
		// Force-remove: the pod goes now, not after its grace period.
		if err := d.cs.CoreV1().Pods(d.ns).Delete(ctx, podName(obj), metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			return d.classify(err, "delete pod of "+name)
		}
		if err := d.removeParts(ctx, obj); err != nil {
			return err
		}
		if err := d.waitGone(ctx, obj); err != nil {
			return err
		}
	case berth.ErrorCode(err) != "not_found":
		return err
	}
	if !removeVolume {
		return nil
	}
	c, err := d.cs.CoreV1().PersistentVolumeClaims(d.ns).Get(ctx, claimName(obj), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return d.classify(err, "inspect volume claim of "+name)
	}
	if c.Labels[berth.LabelInstance] != d.instance || c.Annotations[annName] != name && c.Labels[berth.LabelName] != labelValue(name) {
		return nil // another instance's claim: not ours to delete
	}
	err = d.cs.CoreV1().PersistentVolumeClaims(d.ns).Delete(ctx, c.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &c.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return d.classify(err, "delete volume claim of "+name)
	}
	return nil
}

// waitGone waits until the StatefulSet and its pod are gone, so that a
// Create of the same name right after Remove starts afresh.
func (d *Driver) waitGone(ctx context.Context, obj string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		_, err := d.cs.AppsV1().StatefulSets(d.ns).Get(ctx, obj, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = d.cs.CoreV1().Pods(d.ns).Get(ctx, podName(obj), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
		}
		if err != nil && ctx.Err() == nil {
			return d.classify(err, "wait for removal of "+obj)
		}
		select {
		case <-ctx.Done():
			return berth.Wrap(berth.ErrUnavailable, ctx.Err(), "remove "+obj+": still being deleted")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Logs returns the last tail lines of the pod's log through the pod log API
// (all when tail <= 0). A stopped container has no pod and no logs: "".
// ErrUnavailable when no kubelet answers for the pod (kwok's fake nodes).
func (d *Driver) Logs(ctx context.Context, name string, tail int) (string, error) {
	sts, err := d.lookup(ctx, name)
	if err != nil {
		return "", err
	}
	p, err := d.pod(ctx, sts)
	if err != nil || p == nil || p.Spec.NodeName == "" {
		return "", err
	}
	opts := &corev1.PodLogOptions{Container: containerName}
	if tail > 0 {
		t := int64(tail)
		opts.TailLines = &t
	}
	lim := int64(maxLogBytes)
	opts.LimitBytes = &lim
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := d.cs.CoreV1().Pods(d.ns).GetLogs(p.Name, opts).Stream(lctx)
	if err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) {
			// The container has not started yet, or the pod just went.
			return "", nil
		}
		if ctx.Err() == nil {
			return "", berth.Wrap(berth.ErrUnavailable, err, "logs of "+name+": the node's kubelet does not answer")
		}
		return "", d.classify(err, "logs of "+name)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLogBytes))
	if err != nil {
		return string(b), berth.Wrap(berth.ErrUnavailable, err, "read logs of "+name)
	}
	return string(b), nil
}

// Stats returns one sample from the metrics API (metrics-server). Without
// it, or for a pod it has no sample of yet, it returns a zero sample (with
// the limit and the time) and an ErrUnavailable error.
func (d *Driver) Stats(ctx context.Context, name string) (berth.Usage, error) {
	sts, err := d.lookup(ctx, name)
	if err != nil {
		return berth.Usage{}, err
	}
	in := d.toInstance(sts, nil)
	u := berth.Usage{MemoryLimitBytes: in.Limits.MemoryBytes, Time: time.Now()}
	m, err := d.metrics.MetricsV1beta1().PodMetricses(d.ns).Get(ctx, podName(sts.Name), metav1.GetOptions{})
	if err != nil {
		if isConnErr(err) {
			return u, d.classify(err, "stats of "+name)
		}
		return u, berth.Wrap(berth.ErrUnavailable, err, "stats of "+name+": no metrics API sample (is metrics-server installed?)")
	}
	for _, c := range m.Containers {
		if c.Name != containerName {
			continue
		}
		u.CPUPercent = float64(c.Usage.Cpu().MilliValue()) / 10
		u.MemoryBytes = c.Usage.Memory().Value()
	}
	u.Time = m.Timestamp.Time
	return u, nil
}

// Update changes the CPU and memory of a container: the StatefulSet's
// template always, and the running pod in place through the pods/resize
// subresource (InPlacePodVerticalScaling); when the cluster refuses the
// resize, the pod is deleted and re-created with the new resources. The pids
// limit is recorded only (see the package comment).
func (d *Driver) Update(ctx context.Context, name string, limits berth.Limits) error {
	sts, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if err := d.checkLimits(ctx, limits); err != nil {
		return err
	}
	res := resources(limits)
	type patchC struct {
		Name      string                      `json:"name"`
		Resources corev1.ResourceRequirements `json:"resources"`
	}
	cpatch := []patchC{{Name: containerName, Resources: res}}
	stsPatch := map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{annPids: strconv.FormatInt(limits.PidsLimit, 10)}},
		"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"containers": cpatch}}},
	}
	if _, err := d.cs.AppsV1().StatefulSets(d.ns).Patch(ctx, sts.Name, types.StrategicMergePatchType, mustJSON(stsPatch), metav1.PatchOptions{}); err != nil {
		return d.classify(err, "update limits of "+name)
	}
	p, err := d.pod(ctx, sts)
	if err != nil || p == nil || p.DeletionTimestamp != nil {
		return err // stopped: the next pod gets the new template
	}
	podPatch := mustJSON(map[string]any{"spec": map[string]any{"containers": cpatch}})
	_, rerr := d.cs.CoreV1().Pods(d.ns).Patch(ctx, p.Name, types.StrategicMergePatchType, podPatch, metav1.PatchOptions{}, "resize")
	if rerr == nil {
		return nil
	}
	if isConnErr(rerr) {
		return d.classify(rerr, "resize pod of "+name)
	}
	// Re-create: the controller makes a new pod from the updated template.
	if err := d.cs.CoreV1().Pods(d.ns).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}); err != nil && !apierrors.IsNotFound(err) {
		return d.classify(err, "re-create pod of "+name)
	}
	for {
		np, err := d.pod(ctx, sts)
		if err != nil {
			return err
		}
		if np == nil || np.UID != p.UID {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("update %s: %w", name, ctx.Err())
		case <-time.After(150 * time.Millisecond):
		}
	}
	return d.waitRunning(ctx, name)
}

// RemoveAll removes every object of this instance, volumes included. For
// tests and for an operator tearing an instance down.
func (d *Driver) RemoveAll(ctx context.Context) error {
	list, err := d.List(ctx)
	if err != nil {
		return err
	}
	for _, in := range list {
		if err := d.Remove(ctx, in.Name, true); err != nil {
			return err
		}
	}
	sel := metav1.ListOptions{LabelSelector: berth.LabelInstance + "=" + d.instance}
	if err := d.cs.CoreV1().PersistentVolumeClaims(d.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil {
		return d.classify(err, "delete volume claims")
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and API types: cannot fail
	}
	return b
}
