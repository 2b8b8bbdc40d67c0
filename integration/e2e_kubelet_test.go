//go:build e2e

package integration

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// kubeletPlaybook recovers cp1's kubelet client certificate. The testbed
// runs a kubelet STAND-IN (testbed/standin/kubelet), not a real kubelet: it
// starts the static pods but neither reads kubelet.conf nor talks to the
// apiserver, so there is no kubelet to restart and `restart: "true"` stands
// for `systemctl restart kubelet`. What a real kubelet would do with the new
// credential, authenticate to the apiserver as system:node:cp1, the test
// does itself against the REAL kube-apiserver.
const kubeletPlaybook = `name: Recover the kubelet client certificate
hosts: cp1
steps:
  - name: recover kubelet client certificate
    renew_kubelet_client:
      restart: "true"
`

// kubeletClientFile is the controller-side path of the file h's
// kubelet-client-current.pem points at.
func kubeletClientFile(t *testing.T, h *testbed.Host) string {
	t.Helper()
	f, err := h.KubeletClientFile()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// selfSubjectReview is the answer of POST selfsubjectreviews.
type selfSubjectReview struct {
	Status struct {
		UserInfo struct {
			Username string   `json:"username"`
			Groups   []string `json:"groups"`
		} `json:"userInfo"`
	} `json:"status"`
}

// whoAmI asks h's apiserver who the client certificate in credPEM (a
// kubelet-client-*.pem: certificate and key) is: POST
// /apis/authentication.k8s.io/v1/selfsubjectreviews. It returns the HTTP
// status and the review.
func whoAmI(t *testing.T, h *testbed.Host, caPEM, credPEM []byte) (int, selfSubjectReview) {
	t.Helper()
	// testbed.NewKubeClient takes a kubeconfig with embedded data: write one
	// (0600, in the test's temp dir) around the credential.
	var certPEM, keyPEM []byte
	for rest := credPEM; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			certPEM = append(certPEM, pem.EncodeToMemory(blk)...)
		} else if strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			keyPEM = pem.EncodeToMemory(blk)
		}
	}
	if certPEM == nil || keyPEM == nil {
		t.Fatal("the kubelet credential lacks a certificate or a key")
	}
	b64 := base64.StdEncoding.EncodeToString
	server := fmt.Sprintf("https://%s:%d", h.Address, testbed.APIServerPort)
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n"+
		"users:\n- name: u\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n", server, b64(caPEM), b64(certPEM), b64(keyPEM))
	path := writeFile(t, "kubelet-credential.conf", kc)
	c, err := testbed.NewKubeClient(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	body := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
	var code int
	var resp []byte
	for i := 0; ; i++ { // a busy apiserver on two cores may time out once
		if code, resp, err = c.Do(t.Context(), http.MethodPost, "/apis/authentication.k8s.io/v1/selfsubjectreviews", body); err == nil || i == 2 {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("%s: POST selfsubjectreviews: %v", h.Name, err)
	}
	var r selfSubjectReview
	if code == http.StatusCreated || code == http.StatusOK {
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatalf("%s: selfsubjectreviews: %v: %s", h.Name, err, resp)
		}
	}
	t.Logf("%s: POST /apis/authentication.k8s.io/v1/selfsubjectreviews: HTTP %d: %s", h.Name, code, strings.TrimSpace(string(resp)))
	return code, r
}

// TestE2EKubeletClientRecovered: cp1's kubelet client certificate has
// expired (the real apiserver refuses it: 401); renew_kubelet_client, run by
// kplay over SSH, issues a new one on the host with the cluster CA's key
// there, and the REAL kube-apiserver authenticates that new credential as
// system:node:cp1 in group system:nodes, while it still refuses the old one.
func TestE2EKubeletClientRecovered(t *testing.T) {
	b := realBed(t, false)
	cp1 := b.Hosts[0]
	caPEM, err := os.ReadFile(cp1.Path("/etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	oldCred, _, err := cp1.ExpireKubeletClient()
	if err != nil {
		t.Fatal(err)
	}

	// The expired credential: the real apiserver says 401.
	if code, _ := whoAmI(t, cp1, caPEM, oldCred); code != http.StatusUnauthorized {
		t.Fatalf("the expired kubelet credential: HTTP %d, want 401", code)
	}

	pb := writeFile(t, "kubelet.yaml", kubeletPlaybook)
	r := run(t, nil, "run", pb, "-i", b.InventoryPath, "--output", "json")
	if r.code != 0 {
		t.Fatalf("kplay run: exit %d", r.code)
	}
	rep := decodeReport(t, r.stdout)
	h := rep.host(t, "cp1")
	if h.Status != "changed" || len(h.Steps) != 1 || h.Steps[0].Type != "renew_kubelet_client" || h.Steps[0].Status != "changed" {
		t.Fatalf("cp1: %+v", h)
	}
	var data struct {
		Node        string    `json:"node"`
		Subject     string    `json:"subject"`
		OldNotAfter time.Time `json:"old_not_after"`
		NewNotAfter time.Time `json:"new_not_after"`
		File        string    `json:"file"`
	}
	if err := json.Unmarshal(h.Steps[0].Data, &data); err != nil {
		t.Fatalf("step data: %v: %s", err, h.Steps[0].Data)
	}
	t.Logf("renew_kubelet_client: %s; data %+v", h.Steps[0].Message, data)
	if data.Node != "cp1" || data.OldNotAfter.After(time.Now()) || time.Until(data.NewNotAfter) < 364*24*time.Hour {
		t.Errorf("step data: %+v", data)
	}

	// The new credential, read on the controller from what the kubelet
	// would read: kubelet-client-current.pem.
	newCred, err := os.ReadFile(kubeletClientFile(t, cp1))
	if err != nil {
		t.Fatal(err)
	}
	if data.File == "" || filepath.Base(data.File) != filepath.Base(kubeletClientFile(t, cp1)) {
		t.Errorf("kubelet-client-current.pem points at %s, the step made %s", kubeletClientFile(t, cp1), data.File)
	}
	leaf, err := parseCertPEM(newCred)
	if err != nil {
		t.Fatal(err)
	}
	code, who := whoAmI(t, cp1, caPEM, newCred)
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("the new kubelet credential: HTTP %d, want 201", code)
	}
	u := who.Status.UserInfo
	if u.Username != "system:node:cp1" || !slices.Contains(u.Groups, "system:nodes") {
		t.Errorf("the apiserver authenticates the new credential as %q in %v, want system:node:cp1 in system:nodes", u.Username, u.Groups)
	}
	msg := fmt.Sprintf("E2E kubelet client recovered: the real kube-apiserver on cp1 authenticates the new credential (not after %s) as username=%s groups=%v; the expired one",
		leaf.NotAfter.UTC().Format(time.RFC3339), u.Username, u.Groups)
	// Every apiserver of the cluster shares the CA: cp2's accepts it too.
	if code, who2 := whoAmI(t, b.Hosts[1], caPEM, newCred); (code != http.StatusCreated && code != http.StatusOK) || who2.Status.UserInfo.Username != "system:node:cp1" {
		t.Errorf("cp2's apiserver: HTTP %d, user %q", code, who2.Status.UserInfo.Username)
	}

	// And the old, expired credential is still refused by the same apiserver.
	code, _ = whoAmI(t, cp1, caPEM, oldCred)
	if code != http.StatusUnauthorized {
		t.Errorf("the expired kubelet credential after the run: HTTP %d, want 401", code)
	}
	msg += fmt.Sprintf(" gets HTTP %d", code)
	t.Log(msg)
	fmt.Println(msg)

	// The kubelet.conf the step wrote names the file, as kubeadm's docs say.
	kc, err := os.ReadFile(cp1.Path("/etc/kubernetes/kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"client-certificate: " + testbed.KubeletClientCertPath, "client-key: " + testbed.KubeletClientCertPath} {
		if !strings.Contains(string(kc), want) {
			t.Errorf("kubelet.conf lacks %q:\n%s", want, kc)
		}
	}
	if strings.Contains(string(kc), "client-key-data") {
		t.Error("kubelet.conf still embeds client-key-data")
	}
	// Nothing of the new key reached the controller's report.
	if blk := pemKey(newCred); blk != "" && (strings.Contains(r.stdout, blk) || strings.Contains(r.stderr, blk)) {
		t.Error("kplay's output holds the new private key")
	}
}

// pemKey returns the base64 body of the private key block in data, or "".
func pemKey(data []byte) string {
	for rest := data; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return ""
		}
		if strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			return base64.StdEncoding.EncodeToString(blk.Bytes)[:40]
		}
	}
}
