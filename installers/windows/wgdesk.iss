; Inno Setup 6 script for wgdesk on Windows (x64).
;
;   pwsh installers\windows\fetch-wintun.ps1          ; wintun\bin\amd64\wintun.dll, archive and DLL checked by SHA-256
;   make dist                                         ; dist\wgdesk\ (build.spec: four .exe + _internal\)
;   iscc /DAppVersion=0.1.0 installers\windows\wgdesk.iss
;
; wgdesk.ico (executables and setup) is made from resources/icons/wgdesk.svg:
;   python installers/icons.py resources/icons/wgdesk.svg 16,32,48,64,256:installers/windows/wgdesk.ico
;
; Installs the bundle to Program Files, the signed wintun.dll next to the executables, the helper as an
; automatic LocalSystem service, the local group `wgdesk` (with the installing user in it), and an
; "Open with" entry for .conf files (an OpenWithProgids value: .conf stays owned by whatever owns it).

#ifndef AppVersion
  #error Pass the version from pyproject.toml: iscc /DAppVersion=X.Y.Z wgdesk.iss
#endif
#define BundleDir "..\..\dist\wgdesk"
#define ServiceName "wgdesk-helper"

; wintun.dll must be the pinned build (wintun_pin.py: its SHA-256 for the pinned Wintun version)
#define WintunPin Exec("python", "wintun_pin.py wintun\bin\amd64\wintun.dll", SourcePath)
#if WintunPin != 0
  #error wintun\bin\amd64\wintun.dll is not the pinned Wintun build: see installers\windows\wintun_pin.py
#endif

[Setup]
AppId={{6D1C2F0E-8B4A-4C57-9E5B-3A0D7F2C9B11}
AppName=wgdesk
AppVersion={#AppVersion}
AppPublisher=wgdesk developers
DefaultDirName={autopf}\wgdesk
DefaultGroupName=wgdesk
DisableProgramGroupPage=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
ChangesAssociations=yes
CloseApplications=yes
UninstallDisplayIcon={app}\wgdesk.exe
OutputDir=..\..\dist
OutputBaseFilename=wgdesk-{#AppVersion}-setup
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
SetupIconFile=wgdesk.ico

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "wintun\bin\amd64\wintun.dll"; DestDir: "{app}"; Flags: ignoreversion

[Icons]
Name: "{autoprograms}\wgdesk"; Filename: "{app}\wgdesk.exe"
Name: "{commonstartup}\wgdesk"; Filename: "{app}\wgdesk.exe"; Tasks: autostart

[Tasks]
Name: autostart; Description: "Start wgdesk when I sign in"

[Registry]
Root: HKLM; Subkey: "Software\Classes\.conf\OpenWithProgids"; ValueType: string; ValueName: "wgdesk.conf"; ValueData: ""; Flags: uninsdeletevalue
Root: HKLM; Subkey: "Software\Classes\wgdesk.conf"; ValueType: string; ValueName: ""; ValueData: "WireGuard tunnel configuration"; Flags: uninsdeletekey
Root: HKLM; Subkey: "Software\Classes\wgdesk.conf\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\wgdesk.exe,0"
Root: HKLM; Subkey: "Software\Classes\wgdesk.conf\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\wgdesk.exe"" ""%1"""
Root: HKLM; Subkey: "Software\Classes\Applications\wgdesk.exe\SupportedTypes"; ValueType: string; ValueName: ".conf"; ValueData: ""; Flags: uninsdeletekey

[Run]
Filename: "{sys}\net.exe"; Parameters: "localgroup wgdesk /add /comment:""May control wgdesk tunnels"""; Flags: runhidden; StatusMsg: "Creating the wgdesk group..."
Filename: "{sys}\net.exe"; Parameters: "localgroup wgdesk ""{username}"" /add"; Flags: runhidden
Filename: "{sys}\sc.exe"; Parameters: "create {#ServiceName} binPath= ""\""{app}\{#ServiceName}.exe\"""" start= auto obj= LocalSystem depend= Nsi/TcpIp DisplayName= ""wgdesk helper"""; Flags: runhidden; StatusMsg: "Installing the wgdesk helper service..."
Filename: "{sys}\sc.exe"; Parameters: "description {#ServiceName} ""Sets up WireGuard tunnels for the wgdesk app"""; Flags: runhidden
Filename: "{sys}\sc.exe"; Parameters: "sidtype {#ServiceName} unrestricted"; Flags: runhidden
Filename: "{sys}\sc.exe"; Parameters: "failure {#ServiceName} reset= 86400 actions= restart/2000/restart/5000/none/0"; Flags: runhidden
Filename: "{sys}\sc.exe"; Parameters: "failureflag {#ServiceName} 1"; Flags: runhidden
; --install: a %ProgramData%\wgdesk that others could change (anyone may create it before wgdesk is
; installed) is moved aside to wgdesk.untrusted-<UTC time> and made anew with a protected ACL; a sound
; one (an upgrade's) is kept. Before the service starts: the service refuses such a folder. Not [Dirs]:
; it would give the folder ProgramData's inherited ACL, which the helper refuses.
Filename: "{app}\{#ServiceName}.exe"; Parameters: "--install"; Flags: runhidden waituntilterminated; StatusMsg: "Preparing the helper's folder..."
Filename: "{sys}\sc.exe"; Parameters: "start {#ServiceName}"; Flags: runhidden
Filename: "{app}\wgdesk.exe"; Description: "Start wgdesk"; Flags: nowait postinstall skipifsilent

; --uninstall stops the service and waits until its process has ended before removing anything
; (no "sc.exe stop" first: it returns before the service has stopped)
[UninstallRun]
Filename: "{app}\{#ServiceName}.exe"; Parameters: "--uninstall"; Flags: runhidden waituntilterminated; RunOnceId: "RemoveLeftovers"
Filename: "{sys}\sc.exe"; Parameters: "delete {#ServiceName}"; Flags: runhidden; RunOnceId: "DeleteHelper"
Filename: "{sys}\net.exe"; Parameters: "localgroup wgdesk /delete"; Flags: runhidden; RunOnceId: "DeleteGroup"

[Code]
// Upgrades: stop and remove the old service before its executable is replaced. The installed helper's
// --stop waits until the service's process has ended (sc.exe stop returns before); a helper too old to
// know --stop (or one that did not stop in time) leaves sc.exe stop to try.
function PrepareToInstall(var NeedsRestart: Boolean): String;
var
  ResultCode: Integer;
  OldHelper: String;
begin
  OldHelper := ExpandConstant('{app}\{#ServiceName}.exe');
  if not (FileExists(OldHelper) and Exec(OldHelper, '--stop', '', SW_HIDE, ewWaitUntilTerminated, ResultCode) and (ResultCode = 0)) then
    Exec(ExpandConstant('{sys}\sc.exe'), 'stop {#ServiceName}', '', SW_HIDE, ewWaitUntilTerminated, ResultCode);
  Exec(ExpandConstant('{sys}\sc.exe'), 'delete {#ServiceName}', '', SW_HIDE, ewWaitUntilTerminated, ResultCode);
  Result := '';
end;
