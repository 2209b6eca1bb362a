{{/* Names and labels shared by every template. */}}
{{- define "deployguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deployguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "deployguard.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "deployguard.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "deployguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deployguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "deployguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "deployguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "deployguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "deployguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The webhook configuration is cluster-scoped: name it after release and namespace. */}}
{{- define "deployguard.webhookName" -}}
{{- printf "%s-%s" (include "deployguard.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deployguard.tlsSecret" -}}
{{- printf "%s-tls" (include "deployguard.fullname" .) }}
{{- end }}

{{- define "deployguard.caSecret" -}}
{{- printf "%s-ca" (include "deployguard.fullname" .) }}
{{- end }}

{{/* mTLS: where the client CA (tls.clientCA) is mounted. */}}
{{- define "deployguard.clientCADir" -}}
/etc/deployguard/client-ca
{{- end }}

{{- define "deployguard.clientCAFile" -}}
{{- printf "%s/ca.crt" (include "deployguard.clientCADir" .) }}
{{- end }}

{{- define "deployguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "deployguard.opaImage" -}}
{{- if .Values.opa.image.digest }}
{{- printf "%s@%s" .Values.opa.image.repository .Values.opa.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.opa.image.repository .Values.opa.image.tag }}
{{- end }}
{{- end }}

{{/* Settings that depend on each other are checked here, with a message for people. */}}
{{- define "deployguard.validate" -}}
{{- range $which, $image := dict "image" .Values.image "opa.image" .Values.opa.image }}
{{- if and (eq (toString $image.tag) "latest") (not $image.digest) }}
{{- fail (printf "%s.tag is \"latest\": pin a version or set %s.digest, or every restart may run different code" $which $which) }}
{{- end }}
{{- end }}
{{- if ge (float64 .Values.admission.deadlineSeconds) (float64 .Values.webhook.timeoutSeconds) }}
{{- fail (printf "admission.deadlineSeconds (%v) must be below webhook.timeoutSeconds (%v): deployguard must answer before the API server gives up" .Values.admission.deadlineSeconds .Values.webhook.timeoutSeconds) }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (le (int .Values.replicaCount) 1) (eq .Values.webhook.failurePolicy "Fail") }}
{{- fail "replicaCount 1 with failurePolicy Fail and a PodDisruptionBudget blocks node drains and stops deploys whenever the one pod is down; run at least 2 replicas" }}
{{- end }}
{{- $clientCA := .Values.tls.clientCA }}
{{- if $clientCA.enabled }}
{{- if ne (len (compact (list $clientCA.existingConfigMap $clientCA.existingSecret))) 1 }}
{{- fail "tls.clientCA.enabled: name the client CA's existingConfigMap or its existingSecret (one of them)" }}
{{- end }}
{{- end }}
{{- $netpol := .Values.networkPolicy }}
{{- if and $netpol.enabled $netpol.ingressFrom .Values.metrics.serviceMonitor.enabled (not $netpol.metricsFrom) }}
{{- fail "networkPolicy.ingressFrom lets only the API server reach the port Prometheus scrapes /metrics on; add Prometheus's pods to networkPolicy.metricsFrom (or turn metrics.serviceMonitor off)" }}
{{- end }}
{{- if and .Values.changeCalendar.watchKubernetes .Values.rbac.create (not .Values.rbac.freezes) }}
{{- fail "changeCalendar.watchKubernetes needs rbac.freezes (get/list/watch on the deployguard.io freeze and window kinds); turn one on or the other off" }}
{{- end }}
{{- end }}

{{/* The serving certificate's DNS names. */}}
{{- define "deployguard.dnsNames" -}}
{{- $svc := include "deployguard.fullname" . -}}
{{- $ns := .Release.Namespace -}}
- {{ $svc }}
- {{ $svc }}.{{ $ns }}
- {{ $svc }}.{{ $ns }}.svc
- {{ $svc }}.{{ $ns }}.svc.cluster.local
{{- end }}

{{/* The pod of the certificate Jobs (hook and rotation). */}}
{{- define "deployguard.certsPodSpec" -}}
serviceAccountName: {{ .serviceAccount }}
restartPolicy: OnFailure
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: certs
    image: {{ include "deployguard.image" .root }}
    imagePullPolicy: {{ .root.Values.image.pullPolicy }}
    args:
      - certs
      - kube
      - --namespace={{ .root.Release.Namespace }}
      - --secret={{ include "deployguard.tlsSecret" .root }}
      - --ca-secret={{ include "deployguard.caSecret" .root }}
      - --service={{ include "deployguard.fullname" .root }}
      - --webhook={{ include "deployguard.webhookName" .root }}
      - --days={{ .root.Values.certificates.validityDays }}
      - --renew-before-days={{ .root.Values.certificates.renewBeforeDays }}
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {memory: 128Mi}
    securityContext:
      {{- toYaml .root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: tmp
    emptyDir: {sizeLimit: 16Mi}
{{- end }}
