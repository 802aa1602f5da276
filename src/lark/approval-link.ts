/**
 * The approval's AppLink, as Lark documents it for opening an approval page: the approval mini
 * program, `path` for mobile and `path_pc` for the desktop client. Feishu and Lark tenants have
 * their own AppLink host and approval app id.
 * https://open.feishu.cn/document/applink-protocol/supported-protocol/open-an-approval-page
 */
const APPROVAL_APPLINK = {
  feishu: { base: 'https://applink.feishu.cn', appId: 'cli_9cb844403dbb9108' },
  lark: { base: 'https://applink.larksuite.com', appId: 'cli_9c7cc8a9a9edd105' },
} as const;

/** LARK_DOMAIN on larksuite.com is a Lark tenant; anything else (open.feishu.cn, an emulator) Feishu. */
function tenantOf(domain: string): keyof typeof APPROVAL_APPLINK {
  let host = '';
  try {
    host = new URL(domain).hostname.toLowerCase();
  } catch {
    // not a URL: config validation reports it; fall back to Feishu here
  }
  return /(^|\.)larksuite\.com\.?$/.test(host) ? 'lark' : 'feishu';
}

/**
 * The card's link to an approval instance: LARK_APPROVAL_LINK when set (`{instanceCode}` is
 * replaced, URL-encoded), else the documented AppLink for the tenant LARK_DOMAIN points at.
 */
export function approvalLinkFor(domain: string, override?: string): (instanceCode: string) => string {
  if (override) return (code) => override.replaceAll('{instanceCode}', encodeURIComponent(code));
  const { base, appId } = APPROVAL_APPLINK[tenantOf(domain)];
  return (code) => {
    const id = encodeURIComponent(code);
    const mobile = encodeURIComponent(`pages/detail/index?instanceId=${id}`);
    const pc = encodeURIComponent(`pc/pages/in-process/index?instanceId=${id}`);
    return `${base}/client/mini_program/open?appId=${appId}&path=${mobile}&path_pc=${pc}`;
  };
}
