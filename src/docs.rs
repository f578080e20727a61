//! Terraform Registry documentation, generated from the schemas.
//!
//! Descriptions are written once, in the schemas (`provider_schema()`, each
//! resource's and data source's `schema()`); this module lays them out the way
//! HashiCorp's `tfplugindocs` does, so the pages under `docs/` read like every
//! other provider's on the Registry:
//!
//! - YAML front matter (`page_title`, `subcategory`, `description`);
//! - a title, the description, `## Example Usage` with the example file;
//! - `## Schema` with `### Required`, `### Optional` and `### Read-Only`
//!   lists, names sorted, each `` - `name` (Type) description ``; nested
//!   blocks and object attributes get a `### Nested Schema for` section;
//! - for resources, `## Import` with the example `import.sh`.
//!
//! Two things tfplugindocs cannot know and we can: the default the provider
//! applies (`Defaults to ...`) and whether a change replaces the resource
//! (`Changing this forces a new resource.`), both appended to the description.
//!
//! `tests/docs.rs` renders every page from the live schemas and fails when the
//! committed files under `docs/` differ; `AIENV_UPDATE_DOCS=1 cargo test --test docs`
//! rewrites them.

use crate::tfplugin::schema::{Attribute, Block, NestedBlock, Nesting, Presence, Schema};
use crate::tfplugin::Type;

/// The provider's short name, as in `aienv_gpu_workstation`.
pub const PROVIDER_NAME: &str = "aienv";

/// The command that regenerates the committed pages.
pub const UPDATE_COMMAND: &str = "AIENV_UPDATE_DOCS=1 cargo test --test docs";

/// The opening of the provider page: what the provider is for. The provider
/// schema's own description says what the provider block configures.
const PROVIDER_INTRO: &str = "The `aienv` provider creates GPU machines for machine-learning work from a \
cloud-neutral description: `gpu = \"A100-80GB:8\"` means the same on every cloud, and the plan shows the \
instance type and the hourly cost it resolves to, from a GPU catalog built into the provider. Invalid input \
fails at plan with an error on the attribute at fault, and a create that fails half-way deletes what it \
made (or, when that fails too, records it in the state for `terraform destroy`). \
This release creates workstations on AWS (EC2) and Google Cloud (Compute Engine), from the same \
configuration apart from `cloud`; Azure comes next.";

/// How-to sections of the provider page that the schema cannot say: where
/// credentials come from and how the provider fits next to hashicorp/aws and
/// hashicorp/google.
const PROVIDER_GUIDE: &str = r#"## Authentication

The provider block can stay empty: every setting falls back to the environment
variables and files the official providers (`hashicorp/aws`, `hashicorp/google`)
use, so one configuration runs on a laptop, in CI and in Terraform Cloud.

**AWS**. Credentials come from the AWS SDK's default chain, first match wins:

1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (plus `AWS_SESSION_TOKEN` for
   temporary credentials);
2. the shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`),
   profile `aws { profile = "..." }`, else `AWS_PROFILE`, else `default`, including
   SSO, `role_arn` and `credential_process` profiles;
3. web identity: `AWS_ROLE_ARN` with `AWS_WEB_IDENTITY_TOKEN_FILE`;
4. the ECS task role, then the EC2 instance profile.

The default region is `aws { region = "..." }`, else `AWS_REGION`, else
`AWS_DEFAULT_REGION`, else the profile's region; a resource's own `region` wins
over all of them.

```shell
export AWS_PROFILE=ml-dev
export AWS_REGION=us-east-1
terraform plan
```

**Google Cloud**. Credentials, first match wins:

1. `gcp { credentials = "..." }`, else `GOOGLE_CREDENTIALS`, else
   `GOOGLE_CLOUD_KEYFILE_JSON` or `GCLOUD_KEYFILE_JSON`: a service account key,
   either the JSON itself or the path of the key file. Files of type
   `authorized_user`, `external_account` (workload identity federation) and
   `impersonated_service_account` are accepted too;
2. Application Default Credentials: the file named by
   `GOOGLE_APPLICATION_CREDENTIALS`, else the one
   `gcloud auth application-default login` writes, else the metadata server (on
   Compute Engine, GKE with Workload Identity, Cloud Build, Cloud Run).

Google credentials are read on the first Compute Engine call, so a configuration
whose workstations all run on AWS needs none.

The project is `gcp { project = "..." }`, else `GOOGLE_PROJECT`,
`GOOGLE_CLOUD_PROJECT`, `GCLOUD_PROJECT` or `CLOUDSDK_CORE_PROJECT`, else the
`project_id` of the key from step 1 (Application Default Credentials do not
supply one). The default region is `gcp { region = "..." }`, else
`GOOGLE_REGION`, `GCLOUD_REGION` or `CLOUDSDK_COMPUTE_REGION`, else the region of
the default zone; a resource's own `region` wins. The default zone is
`gcp { zone = "..." }`, else `GOOGLE_ZONE`, `GCLOUD_ZONE` or
`CLOUDSDK_COMPUTE_ZONE`. A workstation without its own `zone` goes into the
default zone when that zone is in its region and offers its machine type (and,
for N1 machines, its GPU); otherwise into the first zone of the region, by name,
that does.

```shell
export GOOGLE_PROJECT=my-ml-project
export GOOGLE_REGION=us-central1
gcloud auth application-default login
terraform plan
```

The account needs the Compute Engine API enabled in the project and these
permissions: `compute.instances.create`, `.get`, `.list`, `.delete`, `.start`,
`.stop`, `.resume`, `.setMachineType`, `.setMachineResources`, `.setLabels`,
`.setMetadata`, `.setTags`, `.attachDisk`; `compute.disks.create`, `.get`,
`.delete`, `.resize`, `.use`; `compute.firewalls.create`, `.get`, `.update`,
`.delete` with `compute.networks.updatePolicy`; `compute.subnetworks.get`,
`.use`, `.useExternalIp`; `compute.machineTypes.get`, `compute.acceleratorTypes.get`,
`compute.zones.list`, `compute.zoneOperations.get`, `compute.globalOperations.get`;
and `compute.images.get`, `.getFromFamily`, `.useReadOnly` on the image (Google's
public image projects grant those to every account). The predefined roles
`roles/compute.instanceAdmin.v1` and `roles/compute.securityAdmin` (for the
firewall rules) together include them.

`gcp { endpoint = "..." }`, else `GOOGLE_COMPUTE_CUSTOM_ENDPOINT`, replaces the
Compute Engine API root, e.g. `http://127.0.0.1:8089` for an emulator (requests go
to `<endpoint>/compute/v1/projects/...`). With a plain `http://` endpoint and no
credentials configured, requests carry no credentials: a Google token never
travels in clear text.

**Azure**: the `azure` block is accepted (its description below names the `ARM_*`
variables it will fall back to) so configurations can be written now, but this
release has no Azure backend: `cloud = "azure"` fails at plan with an error on
`cloud`.

Keep secrets out of `.tf` files: `gcp.credentials` and `azure.client_secret` are
marked sensitive, but environment variables keep them out of version control.

## Terraform Cloud and Terraform Enterprise

Set the same variables as **Environment Variables** of the workspace, and mark the
secret ones *Sensitive*: for example `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
`AWS_REGION`, or `AWS_ROLE_ARN` with a token file for web identity; for Google
Cloud, `GOOGLE_CREDENTIALS` (the key file's JSON on one line, e.g. the output of
`jq -c . key.json`), `GOOGLE_PROJECT` and `GOOGLE_REGION`. Terraform Cloud's
*dynamic provider credentials* are implemented inside `hashicorp/aws` and
`hashicorp/google` and are not supported by this provider yet.

## Default tags

`default_tags` are merged under every resource's own `tags` (the resource's value
wins for the same key) and applied to what the resource creates. `tags_all` shows
the merged result.

- On AWS they are tags of the instance, its disks, its security group and its key
  pair. Tag keys may only contain letters, digits and `+ - = . , _ : @` (the
  instance's tags are readable in its instance metadata, which allows no other
  characters) and must not start with `aws:`; other keys fail at plan.
- On Google Cloud they are labels of the instance and its disks (firewall rules
  have no labels). Labels allow only lowercase letters, digits, `_` and `-`, at
  most 63 characters, and keys must start with a letter, so tags are converted:
  `"Cost Center" = "ML Platform"` becomes the label `cost_center = "ml_platform"`,
  and a key that does not start with a letter (or starts with `goog`) gets the
  prefix `t_`. The tags as written are kept in the instance metadata item
  `aienv-tags`, so plans show them unchanged. Two tags that would become the same
  label key (`Team` and `team`) fail at plan.

Keys starting with `aienv-` are reserved for the provider's bookkeeping
(`aienv-name`, `aienv-gpu`, ...), which is how `terraform import` and the cleanup
after a failed create find a workstation's objects.

```terraform
provider "aienv" {
  default_tags = {
    team        = "ml-research"
    cost-center = "gpu-dev"
  }
}
```

## Using it with the hashicorp/aws provider

`aienv` creates the machine, its disks, its security group and its key pair; the
network around it can come from `hashicorp/aws`:

- **Your own subnet**: pass `subnet_id = aws_subnet.gpu.id`. The workstation's zone
  becomes the subnet's zone and its security group is created in the subnet's VPC.
  With `public_ip = true` the subnet needs a route to an internet gateway for the
  address to be reachable. Without `subnet_id` the default VPC's subnet in the
  chosen zone is used.
- **The workstation's security group**: `firewall_id` is its id. Use it as the
  *source* in rules of other groups, for example to let the workstation reach an
  EFS file system or a database: `referenced_security_group_id =
  aienv_gpu_workstation.dev.firewall_id` in an `aws_vpc_security_group_ingress_rule`
  (`source_security_group_id` in an `aws_security_group_rule`).
- **Rules on that group**: the ingress rules for `ports` from `allowed_cidrs` are
  the provider's and carry the description `managed by aienv`. Rules others add to
  the group (an `aws_vpc_security_group_ingress_rule` with `security_group_id =
  aienv_gpu_workstation.dev.firewall_id`) are left alone: they are neither shown
  as a difference nor removed. Open the workstation's own ports with `ports` and
  `allowed_cidrs`.

`examples/with-hashicorp-aws` in the provider's repository is a complete
configuration: a VPC and subnet from `hashicorp/aws`, a workstation in it, and an
EFS file system that only the workstation can mount.

## Using it with the hashicorp/google provider

`aienv` creates the instance, its boot and data disks and its firewall rules; the
network around it can come from `hashicorp/google`:

- **Your own subnetwork**: pass `subnet_id = google_compute_subnetwork.gpu.id`
  (`projects/P/regions/R/subnetworks/S`) or `google_compute_subnetwork.gpu.self_link`;
  both name the same subnetwork, and the spelling you wrote is the one kept. The
  subnetwork must be in the workstation's region, and the workstation's firewall
  rules are created in its network. Without `subnet_id` the machine goes into the
  project's `default` network.
- **The workstation's firewall rules**: Compute Engine rules select instances by
  network tag. The workstation carries the tag `aienv-<name>`, and its rules are
  `aienv-<name>` (IPv4 ranges) and `aienv-<name>-v6` (IPv6 ranges), allowing TCP
  `ports` from `allowed_cidrs` and described as `managed by aienv`. `firewall_id`
  is the path of the first of them, `projects/P/global/firewalls/aienv-<name>`, the
  form `google_compute_firewall` uses as id. With an empty `allowed_cidrs` there is
  no rule at all (a rule without source ranges would admit everyone) and
  `firewall_id` is null.
- **More access by network tag**: a `google_compute_firewall` with `target_tags =
  ["aienv-${aienv_gpu_workstation.dev.name}"]` opens more to the workstation (for
  example SSH through Identity-Aware Proxy from `35.235.240.0/20`); `source_tags`
  with the same tag lets the workstation reach other instances of the network. The
  provider never touches rules with other names, and refuses to take over a rule
  named like its own that it did not create.
- **Ids**: `instance_id` (`projects/P/zones/Z/instances/N`) and `data_disk_id`
  (`projects/P/zones/Z/disks/N-data`) have the form `hashicorp/google` uses for
  `google_compute_instance` and `google_compute_disk` ids.
- **Labels and metadata**: set labels with `tags`; labels other tools put on the
  instance show as a difference and are removed by the next update, except the
  `goog-*` labels Google sets itself. The provider writes `startup-script` and
  `ssh-keys` at create and afterwards changes only its own `aienv-*` metadata
  items; other items, such as SSH keys added with `gcloud compute ssh`, are kept.

`examples/with-hashicorp-google` in the provider's repository is a complete
configuration: a VPC network and subnetwork from `hashicorp/google`, a workstation
in it, a firewall rule for SSH through Identity-Aware Proxy by network tag, and a
Filestore share that only the workstation can mount.
"#;

/// The provider page, `docs/index.md`.
pub fn provider_doc(schema: &Schema, example_hcl: &str) -> String {
    let title = format!("{PROVIDER_NAME} Provider");
    let mut out = front_matter(&title, &schema.block.description);
    out.push_str(&format!("# {title}\n\n"));
    push_description(&mut out, PROVIDER_INTRO);
    push_description(&mut out, &schema.block.description);
    push_example(&mut out, example_hcl);
    out.push_str(PROVIDER_GUIDE.trim());
    out.push_str("\n\n");
    out.push_str(&schema_markdown(&schema.block));
    finish(out)
}

/// A resource page, `docs/resources/<name without the provider prefix>.md`.
pub fn resource_doc(
    type_name: &str,
    schema: &Schema,
    example_hcl: &str,
    import_sh: Option<&str>,
) -> String {
    let mut out = object_page(type_name, "Resource", schema, example_hcl);
    if let Some(import) = import_sh {
        out = finish(out);
        out.push_str("\n## Import\n\nImport is supported using the following syntax:\n\n");
        push_fenced(&mut out, "shell", import);
    }
    finish(out)
}

/// A data source page, `docs/data-sources/<name without the provider prefix>.md`.
pub fn data_source_doc(type_name: &str, schema: &Schema, example_hcl: &str) -> String {
    finish(object_page(type_name, "Data Source", schema, example_hcl))
}

/// Where a resource's or data source's page lives under `docs/`:
/// `aienv_gpu_workstation` → `gpu_workstation.md`.
pub fn page_file_name(type_name: &str) -> String {
    let short = type_name
        .strip_prefix(PROVIDER_NAME)
        .and_then(|s| s.strip_prefix('_'))
        .unwrap_or(type_name);
    format!("{short}.md")
}

fn object_page(type_name: &str, kind: &str, schema: &Schema, example_hcl: &str) -> String {
    let title = format!("{type_name} ({kind})");
    let page_title = format!("{type_name} {kind} - terraform-provider-{PROVIDER_NAME}");
    let mut out = front_matter(&page_title, &schema.block.description);
    out.push_str(&format!("# {title}\n\n"));
    push_description(&mut out, &schema.block.description);
    push_example(&mut out, example_hcl);
    out.push_str(&schema_markdown(&schema.block));
    out
}

fn front_matter(page_title: &str, description: &str) -> String {
    let mut out = String::from("---\n");
    out.push_str(&format!(
        "# generated from the schema by src/docs.rs: {UPDATE_COMMAND}\n"
    ));
    out.push_str(&format!(
        "page_title: \"{}\"\n",
        page_title.replace('"', "\\\"")
    ));
    out.push_str("subcategory: \"\"\n");
    out.push_str("description: |-\n");
    let plain = plain_text(description);
    if plain.is_empty() {
        out.push_str("  \n");
    }
    for line in plain.lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str("---\n\n");
    out
}

/// Markdown to the plain text the Registry shows in search results: code spans
/// and emphasis lose their markers, links keep their text.
fn plain_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut chars = markdown.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {}
            '*' => {}
            '[' => {
                // [text](url) → text
                let mut text = String::new();
                let mut closed = false;
                for t in chars.by_ref() {
                    if t == ']' {
                        closed = true;
                        break;
                    }
                    text.push(t);
                }
                if closed && chars.peek() == Some(&'(') {
                    out.push_str(&text);
                    for u in chars.by_ref() {
                        if u == ')' {
                            break;
                        }
                    }
                } else {
                    out.push('[');
                    out.push_str(&text);
                    if closed {
                        out.push(']');
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn push_description(out: &mut String, description: &str) {
    let d = description.trim();
    if !d.is_empty() {
        out.push_str(d);
        out.push_str("\n\n");
    }
}

fn push_example(out: &mut String, example_hcl: &str) {
    if example_hcl.trim().is_empty() {
        return;
    }
    out.push_str("## Example Usage\n\n");
    push_fenced(out, "terraform", example_hcl);
    out.push('\n');
}

fn push_fenced(out: &mut String, lang: &str, body: &str) {
    out.push_str(&format!("```{lang}\n"));
    out.push_str(
        body.trim_end_matches(['\n', '\r', ' ', '\t'])
            .trim_start_matches('\n'),
    );
    out.push_str("\n```\n");
}

/// Exactly one newline at the end of the page.
fn finish(mut out: String) -> String {
    while out.ends_with('\n') {
        out.pop();
    }
    out.push('\n');
    out
}

/// The `## Schema` section of a block: `### Required`, `### Optional`,
/// `### Read-Only`, then one `### Nested Schema for` section per nested block
/// or object-typed attribute.
pub fn schema_markdown(block: &Block) -> String {
    let mut out = String::from(
        "<!-- schema generated from the provider's schema by src/docs.rs -->\n## Schema\n\n",
    );
    write_block(&mut out, &[], block, true);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Required,
    Optional,
    ReadOnly,
}

impl Group {
    const ALL: [Group; 3] = [Group::Required, Group::Optional, Group::ReadOnly];

    fn title(self, root: bool) -> &'static str {
        match (self, root) {
            (Group::Required, true) => "### Required",
            (Group::Optional, true) => "### Optional",
            (Group::ReadOnly, true) => "### Read-Only",
            (Group::Required, false) => "Required:",
            (Group::Optional, false) => "Optional:",
            (Group::ReadOnly, false) => "Read-Only:",
        }
    }

    fn of(presence: Presence) -> Group {
        match presence {
            Presence::Required => Group::Required,
            Presence::Optional | Presence::OptionalComputed => Group::Optional,
            Presence::Computed => Group::ReadOnly,
        }
    }

    fn of_block(block: &Block) -> Group {
        // A block whose every attribute is read-only is itself read-only;
        // otherwise it is optional (our blocks have no minimum count).
        let all_computed = !block.attributes.is_empty()
            && block
                .attributes
                .iter()
                .all(|a| a.presence == Presence::Computed)
            && block
                .blocks
                .iter()
                .all(|b| Group::of_block(&b.block) == Group::ReadOnly);
        if all_computed {
            Group::ReadOnly
        } else {
            Group::Optional
        }
    }
}

enum Child<'a> {
    Attr(&'a Attribute),
    Block(&'a NestedBlock),
}

impl Child<'_> {
    fn name(&self) -> &str {
        match self {
            Child::Attr(a) => a.name,
            Child::Block(b) => b.name,
        }
    }

    fn group(&self) -> Group {
        match self {
            Child::Attr(a) => Group::of(a.presence),
            Child::Block(b) => Group::of_block(&b.block),
        }
    }
}

/// A section written after the lists of the block that refers to it.
enum Nested<'a> {
    Block {
        path: Vec<String>,
        block: &'a Block,
    },
    Object {
        path: Vec<String>,
        anchor_kind: &'static str,
        ty: &'a Type,
        group: Group,
    },
}

fn anchor(kind: &str, path: &[String]) -> String {
    format!("{kind}--{}", path.join("--"))
}

fn see_below(anchor_id: &str) -> String {
    format!(" (see [below for nested schema](#{anchor_id}))")
}

fn write_block(out: &mut String, parents: &[String], block: &Block, root: bool) {
    let mut children: Vec<Child> = block
        .attributes
        .iter()
        .map(Child::Attr)
        .chain(block.blocks.iter().map(Child::Block))
        .collect();
    children.sort_by(|a, b| a.name().cmp(b.name()));
    let mut nested = Vec::new();
    for group in Group::ALL {
        let members: Vec<&Child> = children.iter().filter(|c| c.group() == group).collect();
        if members.is_empty() {
            continue;
        }
        out.push_str(group.title(root));
        out.push_str("\n\n");
        for child in members {
            let mut path = parents.to_vec();
            path.push(child.name().to_string());
            match child {
                Child::Attr(a) => {
                    out.push_str(&attribute_line(a));
                    if let Some(ty) = object_of(&a.ty) {
                        out.push_str(&see_below(&anchor("nestedatt", &path)));
                        nested.push(Nested::Object {
                            path,
                            anchor_kind: "nestedatt",
                            ty,
                            group,
                        });
                    }
                }
                Child::Block(b) => {
                    out.push_str(&block_line(b));
                    out.push_str(&see_below(&anchor("nestedblock", &path)));
                    nested.push(Nested::Block {
                        path,
                        block: &b.block,
                    });
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
    write_nested(out, nested);
}

fn write_nested(out: &mut String, nested: Vec<Nested>) {
    for n in nested {
        match n {
            Nested::Block { path, block } => {
                write_nested_heading(out, &anchor("nestedblock", &path), &path);
                write_block(out, &path, block, false);
            }
            Nested::Object {
                path,
                anchor_kind,
                ty,
                group,
            } => {
                write_nested_heading(out, &anchor(anchor_kind, &path), &path);
                write_object(out, &path, ty, group);
            }
        }
    }
}

fn write_nested_heading(out: &mut String, anchor_id: &str, path: &[String]) {
    out.push_str(&format!("<a id=\"{anchor_id}\"></a>\n"));
    out.push_str(&format!("### Nested Schema for `{}`\n\n", path.join(".")));
}

/// The attributes of an object type: names and types only (object types carry no
/// descriptions), in the group of the attribute holding them.
fn write_object(out: &mut String, parents: &[String], ty: &Type, group: Group) {
    let Type::Object(attrs) = ty else { return };
    out.push_str(group.title(false));
    out.push_str("\n\n");
    let mut nested = Vec::new();
    for (name, t) in attrs {
        let mut path = parents.to_vec();
        path.push(name.clone());
        out.push_str(&format!("- `{name}` ({})", type_label(t)));
        if let Some(inner) = object_of(t) {
            out.push_str(&see_below(&anchor("nestedobjatt", &path)));
            nested.push(Nested::Object {
                path,
                anchor_kind: "nestedobjatt",
                ty: inner,
                group,
            });
        }
        out.push('\n');
    }
    out.push('\n');
    write_nested(out, nested);
}

/// The object type to document below an attribute: its own type when it is an
/// object, or its element type when it is a collection of objects.
fn object_of(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Object(_) => Some(ty),
        Type::List(e) | Type::Set(e) | Type::Map(e) if matches!(**e, Type::Object(_)) => Some(e),
        _ => None,
    }
}

/// `` - `name` (Type[, Sensitive]) description[ Defaults to `x`.][ Changing this forces a new resource.] ``
fn attribute_line(a: &Attribute) -> String {
    let mut label = type_label(&a.ty);
    if a.sensitive {
        label.push_str(", Sensitive");
    }
    let mut line = format!("- `{}` ({label})", a.name);
    let text = attribute_text(a);
    if !text.is_empty() {
        line.push(' ');
        line.push_str(&text);
    }
    line
}

/// The description with the hints the schema records beside it.
fn attribute_text(a: &Attribute) -> String {
    let mut parts: Vec<String> = Vec::new();
    let desc = collapse_paragraphs(a.description.trim());
    if !desc.is_empty() {
        parts.push(sentence(&desc));
    }
    if let Some(d) = a.default {
        parts.push(format!("Defaults to `{d}`."));
    }
    if a.forces_replacement {
        parts.push("Changing this forces a new resource.".to_string());
    }
    parts.join(" ")
}

/// `` - `name` (Block[, Optional]) description ``, as tfplugindocs writes blocks.
fn block_line(b: &NestedBlock) -> String {
    let mut label = String::from("Block");
    match b.nesting {
        Nesting::Single => {
            label.push_str(match Group::of_block(&b.block) {
                Group::ReadOnly => ", Read-only",
                _ => ", Optional",
            });
        }
        Nesting::List => {
            label.push_str(" List");
            if b.max_items > 0 {
                label.push_str(&format!(", Max: {}", b.max_items));
            }
        }
    }
    let mut line = format!("- `{}` ({label})", b.name);
    let desc = collapse_paragraphs(b.block.description.trim());
    if !desc.is_empty() {
        line.push(' ');
        line.push_str(&sentence(&desc));
    }
    line
}

/// Ends the text with a full stop unless it already ends a sentence.
fn sentence(text: &str) -> String {
    let t = text.trim_end();
    if t.ends_with(['.', '!', '?']) {
        t.to_string()
    } else {
        format!("{t}.")
    }
}

/// Blank lines inside a list item would end the item: keep paragraphs apart with a
/// Markdown line break instead, as tfplugindocs does.
fn collapse_paragraphs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut newlines = 0;
    for c in text.chars() {
        if c == '\n' {
            newlines += 1;
            continue;
        }
        match newlines {
            0 => {}
            1 => out.push('\n'),
            _ => out.push_str("  \n"),
        }
        newlines = 0;
        out.push(c);
    }
    out
}

/// Types as tfplugindocs names them: `String`, `Number`, `Boolean`,
/// `List of String`, `Map of String`, `List of Object`, ...
pub fn type_label(ty: &Type) -> String {
    match ty {
        Type::String => "String".into(),
        Type::Number => "Number".into(),
        Type::Bool => "Boolean".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_label(e)),
        Type::Set(e) => format!("Set of {}", type_label(e)),
        Type::Map(e) => format!("Map of {}", type_label(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(block: Block) -> Schema {
        Schema { version: 0, block }
    }

    fn sample() -> Schema {
        schema(Block {
            description: "Makes a `thing`. See [the guide](https://example.com).".into(),
            attributes: vec![
                Attribute::computed("id", Type::String, "The id."),
                Attribute::required("name", Type::String, "Name of the thing").forces_replacement(),
                Attribute::optional_computed("size", Type::Number, "Size in GB.").default("200"),
                Attribute::optional("secret", Type::String, "A secret.").sensitive(),
                Attribute::optional("enabled", Type::Bool, "On or off."),
                Attribute::optional("tags", Type::Map(Box::new(Type::String)), "Tags."),
                Attribute::computed(
                    "items",
                    Type::List(Box::new(Type::object([
                        ("a", Type::String),
                        ("b", Type::Number),
                    ]))),
                    "The items.",
                ),
            ],
            blocks: vec![NestedBlock {
                name: "aws",
                nesting: Nesting::Single,
                max_items: 1,
                block: Block {
                    description: "AWS settings.".into(),
                    attributes: vec![Attribute::optional("region", Type::String, "Region.")],
                    blocks: vec![],
                },
            }],
        })
    }

    #[test]
    fn types_are_named_like_tfplugindocs() {
        assert_eq!(type_label(&Type::String), "String");
        assert_eq!(type_label(&Type::Bool), "Boolean");
        assert_eq!(type_label(&Type::list(Type::String)), "List of String");
        assert_eq!(type_label(&Type::map(Type::String)), "Map of String");
        assert_eq!(type_label(&Type::set(Type::Number)), "Set of Number");
        assert_eq!(
            type_label(&Type::list(Type::object([("a", Type::String)]))),
            "List of Object"
        );
    }

    #[test]
    fn attributes_are_grouped_sorted_and_annotated() {
        let md = schema_markdown(&sample().block);
        let required = md.find("### Required").unwrap_or(usize::MAX);
        let optional = md.find("### Optional").unwrap_or(usize::MAX);
        let read_only = md.find("### Read-Only").unwrap_or(usize::MAX);
        assert!(required < optional && optional < read_only, "{md}");
        assert!(
            md.contains(
                "- `name` (String) Name of the thing. Changing this forces a new resource.\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("- `size` (Number) Size in GB. Defaults to `200`.\n"),
            "{md}"
        );
        assert!(
            md.contains("- `secret` (String, Sensitive) A secret.\n"),
            "{md}"
        );
        assert!(md.contains("- `enabled` (Boolean) On or off.\n"), "{md}");
        assert!(md.contains("- `tags` (Map of String) Tags.\n"), "{md}");
        // Sorted by name within a group, blocks among the attributes.
        let order: Vec<usize> = [
            "- `aws`",
            "- `enabled`",
            "- `secret`",
            "- `size`",
            "- `tags`",
        ]
        .iter()
        .map(|s| md.find(s).unwrap_or(usize::MAX))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{md}");
    }

    #[test]
    fn nested_blocks_and_object_lists_get_their_own_sections() {
        let md = schema_markdown(&sample().block);
        assert!(
            md.contains("- `aws` (Block, Optional) AWS settings. (see [below for nested schema](#nestedblock--aws))\n"),
            "{md}"
        );
        assert!(md.contains("<a id=\"nestedblock--aws\"></a>\n### Nested Schema for `aws`\n\nOptional:\n\n- `region` (String) Region.\n"), "{md}");
        assert!(
            md.contains("- `items` (List of Object) The items. (see [below for nested schema](#nestedatt--items))\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "### Nested Schema for `items`\n\nRead-Only:\n\n- `a` (String)\n- `b` (Number)\n"
            ),
            "{md}"
        );
    }

    #[test]
    fn resource_page_has_front_matter_example_schema_and_import() {
        let page = resource_doc(
            "aienv_thing",
            &sample(),
            "resource \"aienv_thing\" \"x\" {}\n\n",
            Some("terraform import aienv_thing.x abc\n"),
        );
        assert!(page.starts_with("---\n"), "{page}");
        assert!(
            page.contains("page_title: \"aienv_thing Resource - terraform-provider-aienv\"\n"),
            "{page}"
        );
        assert!(page.contains("subcategory: \"\"\ndescription: |-\n  Makes a thing. See the guide.\n---\n\n# aienv_thing (Resource)\n\nMakes a `thing`."), "{page}");
        assert!(
            page.contains(
                "## Example Usage\n\n```terraform\nresource \"aienv_thing\" \"x\" {}\n```\n\n"
            ),
            "{page}"
        );
        assert!(page.contains("## Import\n\nImport is supported using the following syntax:\n\n```shell\nterraform import aienv_thing.x abc\n```\n"), "{page}");
        assert!(page.ends_with("```\n") && !page.ends_with("\n\n"), "{page}");
        assert!(
            !page.contains("\n\n\n"),
            "two blank lines in a row:\n{page}"
        );
    }

    #[test]
    fn data_source_and_provider_pages_have_their_titles() {
        let ds = data_source_doc(
            "aienv_things",
            &sample(),
            "data \"aienv_things\" \"x\" {}\n",
        );
        assert!(
            ds.contains("page_title: \"aienv_things Data Source - terraform-provider-aienv\""),
            "{ds}"
        );
        assert!(ds.contains("# aienv_things (Data Source)\n"), "{ds}");
        assert!(!ds.contains("## Import"), "{ds}");
        let p = provider_doc(&sample(), "provider \"aienv\" {}\n");
        assert!(p.contains("page_title: \"aienv Provider\"\n"), "{p}");
        assert!(p.contains("# aienv Provider\n"), "{p}");
        assert!(p.contains("## Authentication"), "{p}");
        let guide = p.find("## Authentication").unwrap_or(usize::MAX);
        let example = p.find("## Example Usage").unwrap_or(usize::MAX);
        let schema = p.find("## Schema").unwrap_or(0);
        assert!(example < guide && guide < schema, "{p}");
    }

    #[test]
    fn paragraphs_inside_a_description_stay_in_the_list_item() {
        assert_eq!(
            collapse_paragraphs("One.\n\nTwo.\nThree."),
            "One.  \nTwo.\nThree."
        );
        assert_eq!(sentence("no stop"), "no stop.");
        assert_eq!(sentence("a stop."), "a stop.");
    }

    #[test]
    fn plain_text_drops_markdown_markers() {
        assert_eq!(
            plain_text("Use `gpu`, *not* [this](http://x)."),
            "Use gpu, not this."
        );
        assert_eq!(plain_text("a [b] c"), "a [b] c");
    }

    #[test]
    fn page_file_names_drop_the_provider_prefix() {
        assert_eq!(
            page_file_name("aienv_gpu_workstation"),
            "gpu_workstation.md"
        );
        assert_eq!(page_file_name("other"), "other.md");
    }
}
