// Command gitops-health computes the health of Kubernetes objects the way the two GitOps engines
// do, so the tests hold our Argo CD health checks and our status conventions to the real
// evaluators rather than to a reading of their documentation:
//
//   - Argo CD: a health.lua runs in gopher-lua (the version Argo CD 3 builds with) as Argo CD runs a
//     `resource.customizations.health.<group>_<Kind>` script from argocd-cm: only the package,
//     base and table libraries are open (argocd-cm scripts run with `useOpenLibs` off, so no
//     `string` library: a script that needs one fails here as it fails there; Argo CD's reduced
//     `os` library is left out too, our scripts do not use it), the global `obj` is the object
//     decoded from its unstructured form (integers as numbers), the script gets one second, its
//     returned table is encoded to JSON with layeh.com/gopher-json and read as {status, message},
//     and a status Argo CD does not know becomes Unknown "Lua returned an invalid health status".
//   - Flux: sigs.k8s.io/cli-utils' kstatus `status.Compute`, which kustomize-controller's health
//     checks (`wait: true`, `healthChecks`) wait on.
//
// Usage:
//
//	gitops-health eval --argocd-cm FILE   objects (a JSON array) on stdin; prints a JSON array with
//	                                      {argocd: {status, message} | {error}, kstatus: {status,
//	                                      message} | {error}} per object. The scripts are the
//	                                      health keys of the ConfigMap in FILE (YAML), as Argo CD
//	                                      reads them.
//	gitops-health test DIR                runs every DIR/<group>/<Kind>/health_test.yaml against
//	                                      the health.lua beside it, as Argo CD's own test of its
//	                                      resource_customizations does; exits 1 on a mismatch.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

const (
	healthKeyPrefix     = "resource.customizations.health."
	invalidHealthStatus = "Lua returned an invalid health status"
	scriptTimeout       = time.Second
)

// Health is what Argo CD reads from a health script: its HealthStatus {status, message}.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type outcome struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

type result struct {
	ArgoCD  outcome `json:"argocd"`
	KStatus outcome `json:"kstatus"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-health:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	switch {
	case len(args) == 3 && args[0] == "eval" && args[1] == "--argocd-cm":
		return evalObjects(args[2], stdin, stdout)
	case len(args) == 2 && args[0] == "test":
		return testDir(args[1], stdout)
	default:
		return errors.New("usage: gitops-health eval --argocd-cm FILE < objects.json | gitops-health test DIR")
	}
}

// ---------------------------------------------------------------------------------------------
// Argo CD

// executeHealthLua runs script with `obj` set to the object, as Argo CD's Lua VM does.
func executeHealthLua(obj *unstructured.Unstructured, script string) (*Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	returned := l.Get(-1)
	if returned.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	encoded, err := luajson.Encode(returned)
	if err != nil {
		return nil, err
	}
	health := &Health{}
	if err := json.Unmarshal(encoded, health); err != nil {
		return nil, err
	}
	switch health.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
		return health, nil
	}
	return &Health{Status: "Unknown", Message: invalidHealthStatus}, nil
}

// toLua converts an unstructured value: maps to tables with string keys, slices to sequences,
// numbers (int64 from the API, float64 from YAML) to numbers; anything else is nil.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []interface{}:
		seq := l.CreateTable(len(v), 0)
		for _, item := range v {
			seq.Append(toLua(l, item))
		}
		return seq
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// healthScripts reads the health keys of an argocd-cm ConfigMap: `<group>_<Kind>` -> script,
// keyed `<group>/<Kind>` as Argo CD keys its overrides.
func healthScripts(file string) (map[string]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" {
		return nil, fmt.Errorf("%s: not the ConfigMap argocd-cm (kind %q, name %q)", file, cm.Kind, cm.Metadata.Name)
	}
	scripts := map[string]string{}
	for key, script := range cm.Data {
		if !strings.HasPrefix(key, healthKeyPrefix) {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(key, healthKeyPrefix), "_")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("%s: key %q is not %s<group>_<Kind>", file, key, healthKeyPrefix)
		}
		scripts[parts[0]+"/"+parts[1]] = script
	}
	return scripts, nil
}

// ---------------------------------------------------------------------------------------------
// eval

func evalObjects(configMap string, stdin io.Reader, stdout io.Writer) error {
	scripts, err := healthScripts(configMap)
	if err != nil {
		return err
	}
	var raw []json.RawMessage
	if err := json.NewDecoder(stdin).Decode(&raw); err != nil {
		return fmt.Errorf("stdin: a JSON array of objects: %w", err)
	}
	results := make([]result, 0, len(raw))
	for i, item := range raw {
		obj := &unstructured.Unstructured{}
		// The unstructured JSON decoder keeps integers as int64, as objects read from the API are.
		if err := obj.UnmarshalJSON(item); err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		results = append(results, evaluate(obj, scripts))
	}
	encoder := json.NewEncoder(stdout)
	encoder.SetIndent("", "  ")
	return encoder.Encode(results)
}

func evaluate(obj *unstructured.Unstructured, scripts map[string]string) result {
	var r result
	gk := obj.GroupVersionKind().GroupKind()
	if script, ok := scripts[gk.Group+"/"+gk.Kind]; !ok {
		r.ArgoCD.Error = fmt.Sprintf("argocd-cm has no %s%s_%s", healthKeyPrefix, gk.Group, gk.Kind)
	} else if health, err := executeHealthLua(obj, script); err != nil {
		r.ArgoCD.Error = err.Error()
	} else {
		r.ArgoCD = outcome{Status: health.Status, Message: health.Message}
	}
	if computed, err := status.Compute(obj); err != nil {
		r.KStatus.Error = err.Error()
	} else {
		r.KStatus = outcome{Status: computed.Status.String(), Message: computed.Message}
	}
	return r
}

// ---------------------------------------------------------------------------------------------
// test: Argo CD's resource_customizations layout

type healthTests struct {
	Tests []struct {
		HealthStatus Health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

func testDir(root string, stdout io.Writer) error {
	var scriptsFound []string
	err := filepath.WalkDir(root, func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() || entry.Name() != "health.lua" {
			return err
		}
		scriptsFound = append(scriptsFound, path)
		return nil
	})
	if err != nil {
		return err
	}
	if len(scriptsFound) == 0 {
		return fmt.Errorf("no health.lua under %s", root)
	}
	sort.Strings(scriptsFound)
	failures := 0
	for _, scriptPath := range scriptsFound {
		dir := filepath.Dir(scriptPath)
		script, err := os.ReadFile(scriptPath)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return fmt.Errorf("%s has no health_test.yaml beside it: %w", scriptPath, err)
		}
		var suite healthTests
		if err := yaml.UnmarshalStrict(raw, &suite); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, "health_test.yaml"), err)
		}
		if len(suite.Tests) == 0 {
			return fmt.Errorf("%s: no tests", filepath.Join(dir, "health_test.yaml"))
		}
		for _, test := range suite.Tests {
			input := filepath.Join(dir, test.InputPath)
			got, err := healthOfFile(input, string(script))
			switch {
			case err != nil:
				failures++
				fmt.Fprintf(stdout, "FAIL %s: %v\n", input, err)
			case *got != test.HealthStatus:
				failures++
				fmt.Fprintf(stdout, "FAIL %s: want %s %q, got %s %q\n", input,
					test.HealthStatus.Status, test.HealthStatus.Message, got.Status, got.Message)
			default:
				fmt.Fprintf(stdout, "ok   %s: %s\n", input, got.Status)
			}
		}
	}
	if failures > 0 {
		return fmt.Errorf("%d health test(s) failed", failures)
	}
	return nil
}

// healthOfFile reads a YAML object as Argo CD's test does (numbers become float64) and runs script.
func healthOfFile(path, script string) (*Health, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]interface{}{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	return executeHealthLua(&unstructured.Unstructured{Object: obj}, script)
}
