package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/urbanbrain/urbanbrain/app"
)

// object is the part of a Kubernetes object every manifest has, plus the fields of the kinds
// this test looks into.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`       // ConfigMap, Secret
	StringData map[string]string `yaml:"stringData"` // Secret
	Spec       yaml.Node         `yaml:"spec"`
}

type deploymentSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds int64 `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               struct {
				RunAsNonRoot bool `yaml:"runAsNonRoot"`
			} `yaml:"securityContext"`
			Containers []container `yaml:"containers"`
			Volumes    []struct {
				Name      string         `yaml:"name"`
				EmptyDir  map[string]any `yaml:"emptyDir"`
				ConfigMap *struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
				Secret *struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"secret"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  probe `yaml:"livenessProbe"`
	ReadinessProbe probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Port       int `yaml:"port"`
		TargetPort any `yaml:"targetPort"`
	} `yaml:"ports"`
}

// loadManifests reads every document of every YAML file in dir.
func loadManifests(t *testing.T, dir string) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d does not parse: %v", f, i, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s document %d lacks apiVersion, kind or metadata.name: %+v", f, i, o.Metadata)
			}
			if o.Kind != "Namespace" && o.Metadata.Namespace != "urbanbrain" {
				t.Errorf("%s %s/%s is in namespace %q, want urbanbrain", f, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
			}
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of kind, failing the test when there is not exactly one.
func one(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

func TestKubernetesManifests(t *testing.T) {
	objs := loadManifests(t, "k8s")
	one(t, objs, "Namespace")
	cm := one(t, objs, "ConfigMap")
	secret := one(t, objs, "Secret")

	// The Secret is a placeholder: nothing real may be committed.
	if len(secret.Data) != 0 {
		t.Errorf("the Secret has data %v; keep only placeholder stringData in git", slices.Collect(maps.Keys(secret.Data)))
	}
	for k, v := range secret.StringData {
		if v != "CHANGE-ME" {
			t.Errorf("Secret key %s holds %q, want the placeholder CHANGE-ME", k, v)
		}
	}

	var d deploymentSpec
	dep := one(t, objs, "Deployment")
	if err := dep.Spec.Decode(&d); err != nil {
		t.Fatalf("Deployment spec: %v", err)
	}
	pod := d.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "urbanbrain:latest" {
		t.Errorf("image %q, want urbanbrain:latest", c.Image)
	}
	mounts := map[string]string{} // volume name → mount path
	for _, m := range c.VolumeMounts {
		if m.SubPath == "" {
			mounts[m.Name] = m.MountPath
		}
	}

	// The config file: --config names a key of the ConfigMap, through its volume.
	if len(c.Args) != 3 || c.Args[0] != "serve" || c.Args[1] != "--config" {
		t.Fatalf("args %q, want serve --config <file>", c.Args)
	}
	var cmFile string
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name && mounts[v.Name] != "" {
			cmFile = path.Join(mounts[v.Name], path.Base(c.Args[2]))
			if path.Dir(c.Args[2]) != mounts[v.Name] {
				t.Errorf("--config %s is not in the ConfigMap's mount %s", c.Args[2], mounts[v.Name])
			}
		}
	}
	text, ok := cm.Data[path.Base(c.Args[2])]
	if cmFile == "" || !ok {
		t.Fatalf("--config %s is not a key of the mounted ConfigMap %s", c.Args[2], cm.Metadata.Name)
	}

	// Every key of the file and every URBANBRAIN_* variable is a flag of serve, and the
	// whole configuration validates.
	var cfg app.Config
	fs := serveFlags(&cfg)
	var file map[string]any
	if err := yaml.Unmarshal([]byte(text), &file); err != nil {
		t.Fatalf("the config file in the ConfigMap does not parse: %v", err)
	}
	for k, v := range file {
		switch v.(type) {
		case []any, map[string]any:
			t.Errorf("config key %s: %T; write lists comma-separated, as the flag takes them", k, v)
			continue
		}
		setFlag(t, fs, k, fmt.Sprint(v), "config key "+k)
	}
	if _, ok := file["clickhouse-password"]; ok {
		t.Error("the ConfigMap holds clickhouse-password; it belongs in the Secret")
	}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			if _, ok := secret.StringData[ref.Key]; ref.Name != secret.Metadata.Name || !ok {
				t.Errorf("%s refers to secret %s key %s, which the manifests do not define", e.Name, ref.Name, ref.Key)
			}
			v = "from-secret"
		}
		setEnv(t, fs, e.Name, v)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the Kubernetes configuration does not validate: %v", err)
	}
	if cfg.Store != app.StoreClickHouse || len(cfg.KafkaBrokers) == 0 || len(cfg.ClickHouseAddrs) == 0 || cfg.ClickHousePassword == "" {
		t.Errorf("not configured for Kafka and ClickHouse: store %q, brokers %v, clickhouse %v, password set %v",
			cfg.Store, cfg.KafkaBrokers, cfg.ClickHouseAddrs, cfg.ClickHousePassword != "")
	}

	// --data-dir is a writable emptyDir, since the root filesystem is read-only.
	var dataDirOK bool
	for _, v := range pod.Volumes {
		if v.EmptyDir != nil && mounts[v.Name] == cfg.DataDir {
			dataDirOK = true
		}
	}
	if !dataDirOK {
		t.Errorf("--data-dir %s is not an emptyDir mount", cfg.DataDir)
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= cfg.ShutdownGrace {
		t.Errorf("terminationGracePeriodSeconds %v is not above --shutdown-grace %v", grace, cfg.ShutdownGrace)
	}

	_, portText, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("--http-addr %q: %v", cfg.HTTPAddr, err)
	}
	httpPort, _ := strconv.Atoi(portText)
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != httpPort {
		t.Errorf("container ports %+v, want one on --http-addr's port %d", c.Ports, httpPort)
	}
	for _, p := range []struct {
		name string
		got  probe
		want string
	}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.got.HTTPGet.Path != p.want {
			t.Errorf("%s probe on %q, want %s", p.name, p.got.HTTPGet.Path, p.want)
		}
	}
	ann := d.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != portText {
		t.Errorf("pod annotations %v: want Prometheus to scrape /metrics on %s", ann, portText)
	}
	for _, res := range []string{"cpu", "memory"} {
		if c.Resources.Requests[res] == "" || c.Resources.Limits[res] == "" {
			t.Errorf("no %s request and limit: %+v", res, c.Resources)
		}
	}
	if !pod.SecurityContext.RunAsNonRoot || !c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("want runAsNonRoot, readOnlyRootFilesystem and no privilege escalation: pod %+v, container %+v",
			pod.SecurityContext, c.SecurityContext)
	}

	var svc serviceSpec
	s := one(t, objs, "Service")
	if err := s.Spec.Decode(&svc); err != nil {
		t.Fatalf("Service spec: %v", err)
	}
	if len(svc.Ports) != 1 || svc.Ports[0].Port != 8080 {
		t.Errorf("Service ports %+v, want 8080", svc.Ports)
	}
	for k, v := range svc.Selector {
		if d.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selects %s=%s, which the pods do not carry", k, v)
		}
	}
	if len(svc.Selector) == 0 || !maps.Equal(d.Selector.MatchLabels, svc.Selector) {
		t.Errorf("Service selector %v, Deployment selector %v: want the same pods", svc.Selector, d.Selector.MatchLabels)
	}
}
