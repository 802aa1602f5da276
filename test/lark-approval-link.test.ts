import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { approvalLinkFor } from '../src/lark/approval-link.js';

const params = (link: string) => Object.fromEntries(new URL(link).searchParams);

describe('the approval link on cards', () => {
  it('is the documented AppLink for Feishu tenants (the default domain, and anything not larksuite)', () => {
    const code = '81D31358-93AF-92D6-7425-01A5D67C4E71';
    const expected =
      'https://applink.feishu.cn/client/mini_program/open?appId=cli_9cb844403dbb9108' +
      `&path=pages%2Fdetail%2Findex%3FinstanceId%3D${code}&path_pc=pc%2Fpages%2Fin-process%2Findex%3FinstanceId%3D${code}`;
    expect(approvalLinkFor(loadConfig({}).lark.domain)(code)).toBe(expected);
    expect(approvalLinkFor('https://open.feishu.cn')(code)).toBe(expected);
    expect(approvalLinkFor('http://127.0.0.1:4567')(code)).toBe(expected);
    expect(approvalLinkFor('https://notlarksuite.com')(code)).toBe(expected);
  });

  it('is the Lark AppLink host and approval app id when LARK_DOMAIN is larksuite', () => {
    const link = approvalLinkFor('https://open.larksuite.com')('INST-1');
    expect(link.startsWith('https://applink.larksuite.com/client/mini_program/open?')).toBe(true);
    expect(params(link)).toEqual({
      appId: 'cli_9c7cc8a9a9edd105',
      path: 'pages/detail/index?instanceId=INST-1',
      path_pc: 'pc/pages/in-process/index?instanceId=INST-1',
    });
    expect(params(approvalLinkFor('https://OPEN.LARKSUITE.COM/')('x')).appId).toBe('cli_9c7cc8a9a9edd105');
  });

  it('keeps an odd instance code inside its own parameter', () => {
    const link = approvalLinkFor('https://open.feishu.cn')('a&b=c d');
    const { path } = params(link);
    expect(new URLSearchParams(path!.split('?')[1]).get('instanceId')).toBe('a&b=c d');
    expect(Object.keys(params(link))).toEqual(['appId', 'path', 'path_pc']);
  });

  it('uses LARK_APPROVAL_LINK when set, with {instanceCode} filled in', () => {
    const config = loadConfig({ LARK_APPROVAL_LINK: 'https://intranet.example.com/approvals/{instanceCode}?src=lark', LARK_DOMAIN: 'https://open.larksuite.com' });
    expect(approvalLinkFor(config.lark.domain, config.lark.approvalLink)('A/B 1')).toBe('https://intranet.example.com/approvals/A%2FB%201?src=lark');
    expect(loadConfig({}).lark.approvalLink).toBeUndefined();
  });
});
