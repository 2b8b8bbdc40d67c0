package steps

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// renew_kubelet_client's edit of kubelet.conf: its user is pointed at
// kubelet-client-current.pem, every other byte of the file kept, and no
// secret it held is carried over.

// kubeletClientMapGet returns the value node of key in mapping m, and its index in m.Content.
func kubeletClientMapGet(m *yaml.Node, key string) (*yaml.Node, int) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1], i
		}
	}
	return nil, -1
}

// kubeletClientConfUser finds the user mapping the kubelet uses in a parsed
// kubeconfig: the current context's user, else the first user.
func kubeletClientConfUser(doc *yaml.Node) (*yaml.Node, string, error) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, "", errors.New("not a kubeconfig (no mapping at the top)")
	}
	users, _ := kubeletClientMapGet(root, "users")
	if users == nil || users.Kind != yaml.SequenceNode || len(users.Content) == 0 {
		return nil, "", errors.New("no users")
	}
	want := ""
	if cc, _ := kubeletClientMapGet(root, "current-context"); cc != nil {
		contexts, _ := kubeletClientMapGet(root, "contexts")
		if contexts != nil && contexts.Kind == yaml.SequenceNode {
			for _, c := range contexts.Content {
				if name, _ := kubeletClientMapGet(c, "name"); name != nil && name.Value == cc.Value {
					ctx, _ := kubeletClientMapGet(c, "context")
					if u, _ := kubeletClientMapGet(ctx, "user"); u != nil {
						want = u.Value
					}
				}
			}
		}
	}
	item := users.Content[0]
	for _, u := range users.Content {
		if name, _ := kubeletClientMapGet(u, "name"); want != "" && name != nil && name.Value == want {
			item = u
			break
		}
	}
	if item.Kind != yaml.MappingNode {
		return nil, "", errors.New("the user entry is not a mapping")
	}
	name := ""
	if n, _ := kubeletClientMapGet(item, "name"); n != nil {
		name = n.Value
	}
	user, _ := kubeletClientMapGet(item, "user")
	if user == nil {
		user = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		item.Content = append(item.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "user"}, user)
	}
	if user.Kind != yaml.MappingNode {
		return nil, "", fmt.Errorf("user %q: user is not a mapping", name)
	}
	return user, name, nil
}

// kubeletClientCredKeys are the kubeconfig user keys that name a client credential.
func kubeletClientCredKeys() []string {
	return []string{"client-certificate", "client-key", "client-certificate-data", "client-key-data"}
}

// kubeletClientConf returns kubelet.conf (given redacted) with its user's
// credential pointing at file (client-certificate and client-key), or nil
// if it already does, and a note saying what changes. The result holds no
// secret: the user's embedded data are dropped, and a secret of any other
// entry (which kplay did not read) makes it an error.
func kubeletClientConf(redacted []byte, file string) ([]byte, string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(redacted, &doc); err != nil {
		return nil, "", fmt.Errorf("parsing: %w", err)
	}
	user, name, err := kubeletClientConfUser(&doc)
	if err != nil {
		return nil, "", err
	}
	cert, _ := kubeletClientMapGet(user, "client-certificate")
	key, _ := kubeletClientMapGet(user, "client-key")
	certData, _ := kubeletClientMapGet(user, "client-certificate-data")
	keyData := false // client-key-data, token or password, redacted by the probe
	for i := 0; i+1 < len(user.Content); i += 2 {
		keyData = keyData || strings.HasPrefix(user.Content[i].Value, kubeletClientRedacted)
	}
	if cert != nil && key != nil && cert.Value == file && key.Value == file && certData == nil && !keyData {
		return nil, fmt.Sprintf("user %q already uses %s (client-certificate and client-key); left as it is", name, file), nil
	}
	var was []string
	switch {
	case certData != nil || keyData:
		was = append(was, "the embedded client-certificate-data/client-key-data")
	case cert != nil || key != nil:
		c, k := "", ""
		if cert != nil {
			c = cert.Value
		}
		if key != nil {
			k = key.Value
		}
		was = append(was, fmt.Sprintf("client-certificate %q and client-key %q", c, k))
	default:
		was = append(was, "no client certificate")
	}
	var kept []*yaml.Node
	at := -1
	for i := 0; i+1 < len(user.Content); i += 2 {
		k := user.Content[i].Value
		drop := strings.HasPrefix(k, kubeletClientRedacted)
		for _, ck := range kubeletClientCredKeys() {
			drop = drop || k == ck
		}
		if drop {
			if at < 0 {
				at = len(kept)
			}
			continue
		}
		kept = append(kept, user.Content[i], user.Content[i+1])
	}
	if at < 0 {
		at = 0
	}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	add := []*yaml.Node{str("client-certificate"), str(file), str("client-key"), str(file)}
	user.Content = append(append(append([]*yaml.Node{}, kept[:at]...), add...), kept[at:]...)
	user.Style = 0 // block, also if it was `user: {}`
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, "", fmt.Errorf("encoding: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, "", fmt.Errorf("encoding: %w", err)
	}
	if bytes.Contains(out.Bytes(), []byte(kubeletClientRedacted)) {
		return nil, "", fmt.Errorf("it holds a secret (client-key-data, token or password) outside user %q, which kplay does not read; point user %q at %s by hand", name, name, file)
	}
	return out.Bytes(), fmt.Sprintf("user %q: %s replaced by client-certificate and client-key %s", name, strings.Join(was, ", "), file), nil
}

// checkKubeletClientConf checks that the redacted kubelet.conf's user uses file.
func checkKubeletClientConf(redacted []byte, file string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(redacted, &doc); err != nil {
		return fmt.Errorf("parsing: %w", err)
	}
	user, name, err := kubeletClientConfUser(&doc)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(user.Content); i += 2 {
		if k := user.Content[i].Value; strings.HasPrefix(k, kubeletClientRedacted) {
			return fmt.Errorf("user %q still holds a secret (client-key-data, token or password)", name)
		}
	}
	for _, k := range kubeletClientCredKeys() {
		v, _ := kubeletClientMapGet(user, k)
		want := ""
		if !strings.HasSuffix(k, "-data") {
			want = file
		}
		got := ""
		if v != nil {
			got = v.Value
		}
		if got != want {
			return fmt.Errorf("user %q: %s is %q, want %q", name, k, got, want)
		}
	}
	return nil
}
