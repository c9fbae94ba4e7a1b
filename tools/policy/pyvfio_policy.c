// SPDX-License-Identifier: GPL-2.0
/*
 * pyvfio_policy: switch genirq's disable policy of a named Linux IRQ at run time.
 *
 * disable_irq_nosync() is lazy by default: it marks the IRQ disabled and leaves the
 * interrupt controller alone.  With IRQ_DISABLE_UNLAZY it masks at the controller
 * at once.  vfio-pci's INTx path for non-PCI-2.3 devices (or nointxmask=1) relies
 * on that; upstream 8b9f128947dd sets the flag around request_irq/free_irq.  This
 * module lets one kernel run under both policies, so the stall of the unfixed
 * kernel (POWER XIVE) can be reproduced on a fixed one and the fix tried on an
 * unfixed one.  Apply it after vfio has requested the IRQ: the fixed kernel
 * rewrites the flag at request_irq/free_irq.
 *
 * Knob: /sys/module/pyvfio_policy/parameters/policy
 *   write "<irq> lazy" or "<irq> unlazy" (also as a load-time parameter);
 *   read: one line "<irq> lazy|unlazy" per IRQ written so far, read live.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/irq.h>
#include <linux/irqdesc.h>
#include <linux/kernel.h>
#include <linux/string.h>

#define MAX_IRQS 32
static unsigned int seen[MAX_IRQS];
static int nseen;
static DEFINE_MUTEX(lock);

static int policy_set(const char *val, const struct kernel_param *kp)
{
	char word[16];
	unsigned int irq;
	int i;

	if (sscanf(val, "%u %15s", &irq, word) != 2)
		return -EINVAL;
	if (!irq_get_irq_data(irq))
		return -ENOENT;
	if (!strcmp(word, "unlazy"))
		irq_set_status_flags(irq, IRQ_DISABLE_UNLAZY);
	else if (!strcmp(word, "lazy"))
		irq_clear_status_flags(irq, IRQ_DISABLE_UNLAZY);
	else
		return -EINVAL;
	mutex_lock(&lock);
	for (i = 0; i < nseen && seen[i] != irq; i++)
		;
	if (i == nseen && nseen < MAX_IRQS)
		seen[nseen++] = irq;
	mutex_unlock(&lock);
	pr_info("pyvfio_policy: irq %u now %s\n", irq, word);
	return 0;
}

static int policy_get(char *buf, const struct kernel_param *kp)
{
	int i, n = 0;

	mutex_lock(&lock);
	for (i = 0; i < nseen; i++) {
		struct irq_data *d = irq_get_irq_data(seen[i]);
		bool unlazy = d && (irq_data_to_desc(d)->status_use_accessors & IRQ_DISABLE_UNLAZY);

		n += scnprintf(buf + n, PAGE_SIZE - n, "%u %s\n", seen[i],
			       !d ? "gone" : unlazy ? "unlazy" : "lazy");
	}
	mutex_unlock(&lock);
	return n;
}

static const struct kernel_param_ops policy_ops = {
	.set = policy_set,
	.get = policy_get,
};
module_param_cb(policy, &policy_ops, NULL, 0644);
MODULE_PARM_DESC(policy, "write '<irq> lazy|unlazy'; read the state of the IRQs written");

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("pyvfio lab: set or clear IRQ_DISABLE_UNLAZY on a Linux IRQ at run time");
