# Windows twin of scripts/package.sh (azd runs it as the prepackage hook on Windows).
# Assembles the deployment package: <outdir>/host.json, <outdir>/<Function>/function.json
# and the Linux amd64 handler binary. Usage: scripts/package.ps1 [outdir] (default: dist).
#
# Known pain: Windows files carry no executable bit, so the zip azd makes from this folder
# marks the binary non-executable. The Functions host tries to chmod the custom handler on
# Flex Consumption, but the package is mounted read-only there; if the app fails to start
# with "permission denied", package and deploy from WSL, Linux or macOS (scripts/package.sh).
param([string]$OutDir = 'dist')
$ErrorActionPreference = 'Stop'

$root = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path
$hostJson = Get-Content (Join-Path $root 'host.json') -Raw | ConvertFrom-Json
$exe = $hostJson.customHandler.description.defaultExecutablePath
if ([string]::IsNullOrEmpty($exe) -or $exe -match '[\\/]') {
    throw "host.json customHandler.description.defaultExecutablePath must be a plain file name, got '$exe'"
}

New-Item -ItemType Directory -Force -Path $OutDir | Out-Null
$out = (Resolve-Path $OutDir).Path
if ($out -eq $root) { throw "refusing to use the repository root as the output folder" }
$existing = @(Get-ChildItem -Force -LiteralPath $out)
if ($existing.Count -gt 0 -and -not (Test-Path (Join-Path $out 'host.json'))) {
    throw "$out is not empty and holds no host.json: not a package folder, refusing to empty it"
}
$existing | Remove-Item -Recurse -Force

Push-Location $root
try {
    Write-Host "package.ps1: building $exe (linux/amd64) into $out"
    $env:GOOS = 'linux'; $env:GOARCH = 'amd64'; $env:CGO_ENABLED = '0'
    go build -trimpath -ldflags '-s -w' -o (Join-Path $out $exe) ./handler
    if ($LASTEXITCODE -ne 0) { throw "go build failed" }
} finally {
    Remove-Item Env:GOOS, Env:GOARCH, Env:CGO_ENABLED -ErrorAction SilentlyContinue
    Pop-Location
}

Copy-Item (Join-Path $root 'host.json') (Join-Path $out 'host.json')
$count = 0
foreach ($dir in Get-ChildItem -Directory (Join-Path $root 'functions')) {
    if (-not (Test-Path (Join-Path $dir.FullName 'function.json'))) { continue }
    if ($dir.Name -eq $exe) { throw "function folder functions/$($dir.Name) clashes with the handler binary" }
    $dest = New-Item -ItemType Directory -Path (Join-Path $out $dir.Name)
    Get-ChildItem -File $dir.FullName |
        Where-Object { $_.Name -notlike '*.go' -and $_.Name -ne 'local.settings.json' -and -not $_.Name.StartsWith('.') } |
        Copy-Item -Destination $dest.FullName
    $count++
}
if ($count -eq 0) { throw "no functions/*/function.json found" }
Write-Host "package.ps1: $count functions, host.json and $exe in $out"
